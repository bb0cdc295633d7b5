// Who holds an inotify watch on a dir, read from /proc (never asked of the daemon): the kernel's own list of a
// process's inotify fds and the inodes they watch.
import { readdirSync, readFileSync, statSync } from 'node:fs'

/** Does process `pid` hold an inotify watch on `dir`'s inode? */
export function inotifyOn (pid: number, dir: string): boolean {
  const ino = statSync(dir).ino.toString(16)
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`)
  } catch {
    return false
  }
  for (const fd of fds) {
    let text: string
    try {
      text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8')
    } catch {
      continue
    }
    for (const m of text.matchAll(/^inotify wd:\S+ ino:([0-9a-f]+) /gm)) if (m[1] === ino) return true
  }
  return false
}
