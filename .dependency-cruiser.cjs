// The import rules CI enforces (npm run check:cycles): no cycles between modules, type-only imports included (a
// cycle of types is still two concepts split wrongly; STYLE.md "No cycles, checked in CI").
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'two modules that need each other: move the shared part down', from: {}, to: { circular: true } }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.build.json' }
  }
}
