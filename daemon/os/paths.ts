// Where the sockets live (SPEC section 2). Kept free of dependencies: the CLI imports it on every call.
import { join } from 'node:path'

export const SYSTEM_SOCKET = '/run/nf-secretsd/api.sock'

export function userSocketPath ({ home, env }: { home: string, env: NodeJS.ProcessEnv }): string {
  return env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'nf-secretsd', 'api.sock') : join(home, '.nf-secretsd', 'api.sock')
}
