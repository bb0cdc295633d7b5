// A small network of the test's own, for partitions (CLUSTER.md "Running etcd here"): one `services` namespace
// (the etcd members, listening on every address of that namespace only) and one namespace per node, each tied to
// the services namespace by its own veth pair on a /30 of 10.x.y.0/24 (x and y random per lab). Cutting a node is
// `ip link set <its services-side end> down`: the node reaches nothing, the others keep going; healing sets it up.
// Every address lives inside a namespace this helper made; the host's own interfaces and routes are never touched.
// stop() kills nothing (the processes' owners do, before it) and deletes the namespaces, which deletes the veths.
// Namespaces left by a test process that died (its pid is in the name) are removed at the next start.
// Root only; `whyNoNetns()` says why not.
import { spawnSync } from 'node:child_process'
import { randomInt } from 'node:crypto'
import type { Test } from 'tap'

export interface LabNode {
  name: string
  ns: string
  /** the node's address on its link */
  addr: string
  /** the services namespace's address on this node's link: where this node reaches etcd */
  servicesAddr: string
  /** the services-side end of the link (cut and heal set it down and up) */
  link: string
  /** the node-side end of the link */
  nodeLink: string
}

export interface NetLab {
  /** the namespace holding etcd (and any other shared service) */
  services: string
  nodes: Map<string, LabNode>
  node: (name: string) => LabNode
  /**
   * argv prefix that runs a command in the node's namespace under its own host name (a UTS namespace of its own), as
   * if on its own machine: `[...lab.wrap('a'), 'node', ...]`. Each step execs the next, so the pid is the command's.
   */
  wrap: (name: string) => string[]
  /** argv prefix for the services namespace */
  inServices: () => string[]
  /** cut the node off (its link down) / reconnect it */
  cut: (name: string) => void
  heal: (name: string) => void
  stop: () => void
}

const PREFIX = 'nfslab'

function ip (args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 })
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`)
}

/**
 * Wait until each [namespace, interface] is operationally up. A veth set up has its carrier turned on by the kernel's
 * linkwatch work, which is batched and can run a second or more later on a loaded machine; until then the device
 * keeps its noop qdisc and drops every packet (a CI run's `healed: a can again` failed so: etcdctl's 1 s dial ran
 * into it). Bounded: a link not up in 20 s throws with its state.
 */
function waitOperUp (links: Array<[string, string]>): void {
  const deadline = Date.now() + 20_000
  const sleeper = new Int32Array(new SharedArrayBuffer(4))
  for (;;) {
    const states = links.map(([ns, dev]) =>
      spawnSync('ip', ['-n', ns, '-o', 'link', 'show', 'dev', dev], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '')
    if (states.every(s => /\bstate UP\b/.test(s) && /[<,]LOWER_UP[,>]/.test(s))) return
    if (Date.now() > deadline) throw new Error(`links not up after 20 s: ${states.map(s => s.trim()).join(' | ')}`)
    Atomics.wait(sleeper, 0, 0, 50)
  }
}

/** Why this process cannot make namespaces, or false when it can. */
export function whyNoNetns (): string | false {
  if (process.geteuid?.() !== 0) return 'needs root (ip netns, veth pairs)'
  if (spawnSync('ip', ['netns', 'list'], { stdio: 'ignore' }).status !== 0) return 'ip netns does not work here'
  if (spawnSync('unshare', ['--uts', 'true'], { stdio: 'ignore' }).status !== 0) return 'unshare --uts does not work here'
  return false
}

/** Remove the namespaces of labs whose test process is gone (a crash or a tap timeout skipped their teardown). */
function removeStale (): void {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  for (const line of r.stdout.split('\n')) {
    const m = /^(nfslab-(\d+)-[a-z0-9]+-\S+)/.exec(line)
    if (m === null) continue
    let alive = true
    try { process.kill(Number(m[2]), 0) } catch { alive = false }
    if (!alive) spawnSync('ip', ['netns', 'del', m[1]!], { stdio: 'ignore' })
  }
}

/** Make the lab; deleted in `t`'s teardown (register process teardowns after this, so they run first). */
export function startNetLab (t: Test, names: string[]): NetLab {
  removeStale()
  const id = `${PREFIX}-${process.pid}-${randomInt(36 ** 4).toString(36)}`
  const net = `10.${randomInt(100, 250)}.${randomInt(0, 256)}`
  const services = `${id}-svc`
  const made: string[] = []
  const nodes = new Map<string, LabNode>()
  const stop = (): void => {
    for (const ns of made.splice(0).reverse()) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
  }
  t.teardown(stop)
  ip(['netns', 'add', services])
  made.push(services)
  ip(['-n', services, 'link', 'set', 'lo', 'up'])
  names.forEach((name, i) => {
    if (!/^[a-z0-9]{1,8}$/.test(name)) throw new Error(`lab node names are 1-8 of [a-z0-9]: ${name}`)
    const ns = `${id}-${name}`
    ip(['netns', 'add', ns])
    made.push(ns)
    ip(['-n', ns, 'link', 'set', 'lo', 'up'])
    // Interface names are global while both ends are still in the root namespace: short and unique per lab.
    const tag = `${randomInt(36 ** 5).toString(36)}${i}`
    const svcEnd = `s${tag}`
    const nodeEnd = `n${tag}`
    ip(['link', 'add', svcEnd, 'type', 'veth', 'peer', 'name', nodeEnd])
    ip(['link', 'set', svcEnd, 'netns', services])
    ip(['link', 'set', nodeEnd, 'netns', ns])
    const servicesAddr = `${net}.${4 * i + 1}`
    const addr = `${net}.${4 * i + 2}`
    ip(['-n', services, 'addr', 'add', `${servicesAddr}/30`, 'dev', svcEnd])
    ip(['-n', ns, 'addr', 'add', `${addr}/30`, 'dev', nodeEnd])
    ip(['-n', services, 'link', 'set', svcEnd, 'up'])
    ip(['-n', ns, 'link', 'set', nodeEnd, 'up'])
    nodes.set(name, { name, ns, addr, servicesAddr, link: svcEnd, nodeLink: nodeEnd })
  })
  // A link just set up has no carrier yet either (see waitOperUp): the lab is handed over once every link carries.
  waitOperUp([...nodes.values()].flatMap(n => [[services, n.link], [n.ns, n.nodeLink]] as Array<[string, string]>))
  const node = (name: string): LabNode => {
    const n = nodes.get(name)
    if (n === undefined) throw new Error(`no lab node ${name}`)
    return n
  }
  return {
    services,
    nodes,
    node,
    wrap: (name) => ['ip', 'netns', 'exec', node(name).ns, 'unshare', '--uts', '--', '/bin/sh', '-c', 'hostname "$0" && exec "$@"', name],
    inServices: () => ['ip', 'netns', 'exec', services],
    cut: (name) => { ip(['-n', services, 'link', 'set', node(name).link, 'down']) },
    heal: (name) => {
      const n = node(name)
      ip(['-n', services, 'link', 'set', n.link, 'up'])
      waitOperUp([[services, n.link], [n.ns, n.nodeLink]])
    },
    stop
  }
}

/** argv prefix: a command under its own host name, network untouched (nodes that need no partition). */
export function ownHost (name: string): string[] {
  return ['unshare', '--uts', '--', '/bin/sh', '-c', 'hostname "$0" && exec "$@"', name]
}
