// The project's one import of node-pty. It is @lydell/node-pty: node-pty 1.1 with the same API, packaged with prebuilt
// binaries for linux-x64 and linux-arm64 (optional platform packages), so an install needs no compiler and no Node
// headers. Tests import it from here too, so a change of package is a change of this file.
export { spawn } from '@lydell/node-pty'
export type { IPty, IPtyForkOptions } from '@lydell/node-pty'
