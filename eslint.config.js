// The project's style (../shared/STYLE.md): standard's rules for TypeScript through neostandard, over every folder
// that holds our code. `npm run lint` runs it; test/ci/static-checks.test.ts fails `npm test` on any finding.
import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: [...resolveIgnoresFromGitignore(), 'prebuilds/**']
  }),
  {
    rules: {
      // `void promise()` is how this code marks a promise it lets run on its own (its errors handled inside): the
      // statement form typescript-eslint's no-floating-promises asks for, and what ts-standard allows too.
      'no-void': ['error', { allowAsStatement: true }],
      // Our strings hold other languages' `${...}` on purpose: Nextflow's `${secrets.NAME}`, shell and systemd
      // variables, IAM policy variables (`${aws:username}`); none of them is a template literal gone wrong.
      'no-template-curly-in-string': 'off',
      // A promise's resolver may say what it resolves (resolveExit, resolveClose): several files import node:path's
      // `resolve`, which a bare `resolve` would shadow.
      'promise/param-names': ['error', { resolvePattern: '^_?resolve', rejectPattern: '^_?reject' }]
    }
  }
]
