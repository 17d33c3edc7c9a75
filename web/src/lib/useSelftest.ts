// The speech round trip (`POST /api/admin/selftest`) takes seconds to a minute, so it belongs to
// the tab rather than to the Models page: the admin may go elsewhere in the app meanwhile and
// finds the result on coming back, and a second run does not start while one is under way.

import { useSyncExternalStore } from 'react'
import { runSelftest } from '../api.ts'
import type { SelftestReport } from '../api.ts'

export type Selftest =
  | { kind: 'idle' }
  /** `startedAt` is `Date.now()` when the request went out. */
  | { kind: 'running'; startedAt: number }
  | { kind: 'done'; report: SelftestReport }
  | { kind: 'failed'; error: unknown }

let current: Selftest = { kind: 'idle' }
/** Counts runs, so that an answer to a forgotten run is dropped. */
let run = 0
const listeners = new Set<() => void>()

function set(next: Selftest): void {
  current = next
  for (const listener of listeners) listener()
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

/** Starts a run unless one is under way; the last run's result is replaced when it answers. */
export function startSelftest(): void {
  if (current.kind === 'running') return
  const mine = ++run
  set({ kind: 'running', startedAt: Date.now() })
  runSelftest().then(
    (report) => {
      if (mine === run) set({ kind: 'done', report })
    },
    (error: unknown) => {
      if (mine === run) set({ kind: 'failed', error })
    },
  )
}

/** Forgets the last run and ignores the answer of one under way (each test starts from nothing). */
export function forgetSelftest(): void {
  run++
  set({ kind: 'idle' })
}

/** The current run or the last one's outcome; re-renders when it changes. */
export function useSelftest(): Selftest {
  return useSyncExternalStore(subscribe, () => current)
}
