// Asks the server again at an interval while something is in progress (a model download).

import { useEffect, useRef } from 'react'

/** One poll that takes longer than this is given up; the next one tries again. */
const POLL_TIMEOUT_MS = 15_000
/** Polling stops after this many failures in a row, rather than hammering a broken server. */
const MAX_FAILURES = 5

/**
 * While `active`, runs `tick` every `everyMs` (counted from the end of the previous run).
 * It stops when `active` turns false, on unmount, or after repeated failures.
 */
export function usePoll(active: boolean, everyMs: number, tick: (signal: AbortSignal) => Promise<void>): void {
  const latest = useRef(tick)
  useEffect(() => {
    latest.current = tick
  })

  useEffect(() => {
    if (!active) return
    let stopped = false
    let failures = 0
    let timer: number | undefined
    let controller: AbortController | null = null

    const run = async () => {
      const current = new AbortController()
      controller = current
      const deadline = window.setTimeout(() => current.abort(), POLL_TIMEOUT_MS)
      try {
        await latest.current(current.signal)
        failures = 0
      } catch {
        failures += 1
      } finally {
        window.clearTimeout(deadline)
      }
      if (!stopped && failures < MAX_FAILURES) timer = window.setTimeout(() => void run(), everyMs)
    }
    timer = window.setTimeout(() => void run(), everyMs)
    return () => {
      stopped = true
      window.clearTimeout(timer)
      controller?.abort()
    }
  }, [active, everyMs])
}
