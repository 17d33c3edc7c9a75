// Starts the real `aimake` binary on a temp data dir and a free loopback port, and reads
// its JSON log until it says it is ready (and, on a fresh install, prints the setup link).

import { spawn } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { createServer as createHttpServer } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

/** Long enough for a cold release binary to migrate a new database. */
const READY_TIMEOUT_MS = 30_000
/** The setup link is logged around start-up; after this we go on without it. */
const SETUP_LINK_GRACE_MS = 3_000

/** A port nobody listens on right now, on loopback only. */
async function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/** The message and fields of one JSON log line, or null for other output. */
export function parseLogLine(line) {
  try {
    const record = JSON.parse(line)
    if (typeof record !== 'object' || record === null) return null
    const fields = record.fields ?? {}
    return { message: String(fields.message ?? record.message ?? ''), fields, level: record.level ?? null }
  } catch {
    return null
  }
}

const SETUP_LINK = /(https?:\/\/[^\s"']+\/setup\?token=[A-Za-z0-9._~%-]+)/

/**
 * Runs `bin serve` and resolves once it is ready:
 * `{ baseUrl, setupUrl, dataDir, logs, stop() }`. `setupUrl` is null when none was logged.
 */
export async function startServer(bin, { env = {} } = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'aimake-e2e-'))
  const port = await freePort()
  const baseUrl = `http://127.0.0.1:${port}`
  // The server warns about AIMAKE_* variables that are not config keys, like ours.
  const inherited = { ...process.env }
  delete inherited.AIMAKE_BIN
  const child = spawn(bin, ['serve'], {
    env: {
      ...inherited,
      AIMAKE_SERVER__BIND: `127.0.0.1:${port}`,
      AIMAKE_SERVER__PUBLIC_URL: baseUrl,
      AIMAKE_DATA__DIR: dataDir,
      AIMAKE_LOG__FORMAT: 'json',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })

  const logs = []
  let ready = false
  let setupUrl = null
  let onChange = () => {}
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))

  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      logs.push(line)
      const link = SETUP_LINK.exec(line)
      if (link) setupUrl = link[1]
      const record = parseLogLine(line)
      if (record?.message.startsWith('aimake is ready')) ready = true
      onChange()
    })
  }

  const waitFor = (done, timeoutMs) =>
    new Promise((resolve) => {
      if (done()) return resolve(true)
      const timer = setTimeout(() => resolve(false), timeoutMs)
      onChange = () => {
        if (done()) {
          clearTimeout(timer)
          resolve(true)
        }
      }
      void exited.then(() => {
        clearTimeout(timer)
        resolve(done())
      })
    })

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
    if (process.env.E2E_KEEP !== '1') await rm(dataDir, { recursive: true, force: true })
  }

  if (!(await waitFor(() => ready, READY_TIMEOUT_MS))) {
    await stop()
    throw new Error(`aimake did not become ready; its log:\n${logs.slice(-40).join('\n')}`)
  }
  await waitFor(() => setupUrl !== null, SETUP_LINK_GRACE_MS)
  onChange = () => {}
  // The log names the public URL; the browser talks to the port we bound.
  const setupPath = setupUrl === null ? null : new URL(setupUrl).pathname + new URL(setupUrl).search
  return { baseUrl, setupUrl: setupPath === null ? null : baseUrl + setupPath, dataDir, logs, stop }
}

/**
 * A models mirror on loopback: the files under `root` at `<url>/<official file name>`, as
 * `models.mirror` expects, so a pull in the browser downloads and verifies real files.
 * Resolves to `{ url, requests, close() }`.
 */
export async function startMirror(root) {
  const requests = []
  const server = createHttpServer(async (request, response) => {
    const name = decodeURIComponent(new URL(request.url ?? '/', 'http://mirror').pathname.slice(1))
    requests.push(name)
    const unsafe = name.split('/').some((part) => part === '' || part === '..')
    const size = unsafe ? null : await stat(join(root, name)).then((s) => (s.isFile() ? s.size : null), () => null)
    if (size === null) {
      response.writeHead(404).end()
      return
    }
    response.writeHead(200, { 'Content-Length': String(size), 'Content-Type': 'application/octet-stream' })
    createReadStream(join(root, name)).pipe(response)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve(undefined))),
  }
}
