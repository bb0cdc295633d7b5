// Reading the few files of a launch dir that belong to a user, as root, safely: the last component is never followed
// through a symlink, only a regular file of that user (or root) counts, and a large log gives its head (identity, pid)
// and tail (the end). The watcher and the run monitor both read through here.
import { constants, promises as fsp } from 'node:fs'

export const HEAD_BYTES = 256 * 1024
const TAIL_BYTES = 64 * 1024

export async function readOwned (path: string, uid: number, head = HEAD_BYTES): Promise<{ text: string, mtimeMs: number } | null> {
  let fh
  try {
    fh = await fsp.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch {
    return null
  }
  try {
    const st = await fh.stat()
    if (!st.isFile() || (st.uid !== uid && st.uid !== 0)) return null
    if (st.size <= head + TAIL_BYTES) {
      const buf = Buffer.alloc(st.size)
      const { bytesRead } = await fh.read(buf, 0, st.size, 0)
      return { text: buf.subarray(0, bytesRead).toString('utf8'), mtimeMs: st.mtimeMs }
    }
    const a = Buffer.alloc(head)
    const b = Buffer.alloc(TAIL_BYTES)
    await fh.read(a, 0, head, 0)
    await fh.read(b, 0, TAIL_BYTES, st.size - TAIL_BYTES)
    return { text: `${a.toString('utf8')}\n${b.toString('utf8')}`, mtimeMs: st.mtimeMs }
  } catch {
    return null
  } finally {
    await fh.close()
  }
}
