// A stand-in EventSource the test drives by hand: emit `status` events, or break the stream.

import { vi } from 'vitest'

type Listener = (event: Event) => void

export class FakeEventSource {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSED = 2
  static instances: FakeEventSource[] = []

  readonly url: string
  readonly withCredentials: boolean
  readyState = FakeEventSource.OPEN
  private listeners = new Map<string, Set<Listener>>()

  constructor(url: string, init?: EventSourceInit) {
    this.url = url
    this.withCredentials = init?.withCredentials ?? false
    FakeEventSource.instances.push(this)
  }

  addEventListener(type: string, listener: Listener) {
    const set = this.listeners.get(type) ?? new Set()
    set.add(listener)
    this.listeners.set(type, set)
  }

  removeEventListener(type: string, listener: Listener) {
    this.listeners.get(type)?.delete(listener)
  }

  close() {
    this.readyState = FakeEventSource.CLOSED
  }

  /** Sends one `status` event as the server would. */
  status(data: { status: string; progress: number; error?: { code: string; message: string } | null }) {
    if (this.readyState === FakeEventSource.CLOSED) return
    const event = new MessageEvent('status', { data: JSON.stringify({ error: null, ...data }) })
    for (const listener of this.listeners.get('status') ?? []) listener(event)
  }

  /** Sends an unnamed event (`message`), as servers that leave out `event:` do. */
  message(data: unknown) {
    const event = new MessageEvent('message', { data: JSON.stringify(data) })
    for (const listener of this.listeners.get('message') ?? []) listener(event)
  }

  /** The connection dies for good (the browser gives up reconnecting). */
  fail() {
    this.readyState = FakeEventSource.CLOSED
    for (const listener of this.listeners.get('error') ?? []) listener(new Event('error'))
  }
}

export function stubEventSource() {
  FakeEventSource.instances = []
  vi.stubGlobal('EventSource', FakeEventSource)
  return FakeEventSource
}

/** The last stream opened for `path`. */
export function streamFor(path: string): FakeEventSource {
  const found = FakeEventSource.instances.filter((s) => s.url === path).at(-1)
  if (found === undefined) throw new Error(`no event stream opened for ${path}`)
  return found
}
