// Event and attach streams are legitimately silent for long stretches, so they leave the idle timeout of the
// connection gate behind when they upgrade; instead the daemon pings them (SPEC 11, "kept alive by pings"). A peer
// that has not answered the previous ping by the next one is gone (a suspended laptop, a SIGSTOPped client, a
// dropped network namespace) and its socket is terminated: a dead stream never holds an fd and a slot of its uid.
import type { WebSocket } from 'ws'

/** Ping every `intervalMs`; terminate when a ping is still unanswered at the next tick. Stops by itself at close. */
export function keepAlive (socket: WebSocket, intervalMs: number): void {
  let answered = true
  socket.on('pong', () => { answered = true })
  const timer = setInterval(() => {
    if (!answered) {
      socket.terminate()
      return
    }
    answered = false
    try {
      socket.ping()
    } catch {
      // Closing already: the close below clears the timer.
    }
  }, intervalMs)
  timer.unref()
  socket.once('close', () => clearInterval(timer))
}

/** The ping interval for an idle timeout: half of it, so a dead peer is found within one idle period. */
export function pingInterval (idleTimeoutSeconds: number): number {
  return Math.max(250, Math.floor(idleTimeoutSeconds * 1000 / 2))
}
