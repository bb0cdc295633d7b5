// The import rules CI enforces (npm run check:cycles): no cycles between modules, type-only imports included (a
// cycle of types is still two concepts split wrongly; STYLE.md "No cycles, checked in CI"), and the arrows that
// must keep pointing down (docs/architecture.md).
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'two modules that need each other: move the shared part down', from: {}, to: { circular: true } },
    {
      name: 'nextflow-formats-stay-below',
      severity: 'error',
      comment: "daemon/nextflow/ knows Nextflow's files and nothing of the rooms that use them (the watcher, the lifecycle, the targets)",
      from: { path: '^daemon/nextflow/' },
      to: { path: '^(adapters/|daemon/(api|cli|cluster|pty|runs|store|watch)/|daemon/(daemon|server|main)\\.ts$)' }
    },
    {
      name: 'cli-through-the-socket-only',
      severity: 'error',
      comment: "the CLI talks to the daemon through the socket: it shares the API's contract and error codes, never a room",
      from: { path: '^daemon/cli/' },
      to: { path: '^(adapters/|daemon/(api|cluster|pty|runs|store|watch)/|daemon/(daemon|server|deps|events)\\.ts$)' }
    },
    {
      name: 'targets-never-import-the-lifecycle',
      severity: 'error',
      comment: 'a target places and removes values; the run lifecycle calls it, never the other way (STYLE.md)',
      from: { path: '^adapters/' },
      to: { path: '^daemon/(api|cli|cluster|pty|runs|store|watch)/' }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.build.json' }
  }
}
