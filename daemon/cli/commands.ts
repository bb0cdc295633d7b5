// The table of nf-secrets' command groups: the words a group's commands start with, and how to load its module.
// A command line loads only the module its first word names, so `secrets list` never pays for `launch`, `sbatch`
// or `ws` (issue 17: a call's wall time within 2 x a bare `node -e 0`). A new group is one line here; `help` and
// "did you mean" load every group, so a group's commands appear in both without more.
import type { Command } from './args.js'

export interface CommandGroup {
  /** the first words of its commands' paths */
  words: readonly string[]
  load: () => Promise<readonly Command[]>
}

export const GROUPS: readonly CommandGroup[] = [
  { words: ['secrets'], load: async () => (await import('./secrets.js')).secretsCommands },
  { words: ['secrets'], load: async () => (await import('./secrets-import.js')).secretsImportCommands },
  { words: ['workspaces'], load: async () => (await import('./workspaces.js')).workspacesCommands },
  { words: ['status', 'whoami'], load: async () => (await import('./system.js')).systemCommands },
  { words: ['events'], load: async () => (await import('./events.js')).eventsCommands },
  { words: ['watch'], load: async () => (await import('./watch.js')).watchCommands },
  { words: ['run', 'arm', 'runs'], load: async () => (await import('./runs.js')).runsCommands },
  { words: ['rerun'], load: async () => (await import('./rerun.js')).rerunCommands },
  { words: ['shell-init'], load: async () => [(await import('./shell-init.js')).shellInitCommand] },
  { words: ['launch', 'attach'], load: async () => (await import('./launch.js')).launchCommands },
  { words: ['sbatch'], load: async () => (await import('./sbatch.js')).sbatchCommands },
  { words: ['policy'], load: async () => (await import('./policy.js')).policyCommands }
]

/**
 * The commands a command line may name: those of the groups its first word belongs to, or every command when the
 * word names no group (help, a typo to suggest for, no command at all). Several groups may share a first word
 * (`secrets` and a group adding `secrets import`): all of them load.
 */
export async function commandsFor (first: string | undefined, groups: readonly CommandGroup[] = GROUPS): Promise<Command[]> {
  const named = groups.filter(g => first !== undefined && g.words.includes(first))
  const chosen = named.length > 0 ? named : groups
  return (await Promise.all(chosen.map(async g => await g.load()))).flat()
}
