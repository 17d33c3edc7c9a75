// Loads data for a page: aborts on unmount or when inputs change, and can be asked again.

import { useCallback, useEffect, useState } from 'react'

export type Loaded<T> =
  | { kind: 'loading' }
  | { kind: 'ok'; data: T }
  | { kind: 'failed'; error: unknown }

export interface Load<T> {
  state: Loaded<T>
  /** The last good data, kept while reloading so the page does not jump. */
  data: T | null
  reload: () => void
  /** Replaces the data in place after a change the page made itself. */
  set: (update: (data: T) => T) => void
}

/** Runs `load` now and whenever `key` changes; `key` stands for every input `load` reads. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, key: string): Load<T> {
  const [state, setState] = useState<Loaded<T>>({ kind: 'loading' })
  const [data, setData] = useState<T | null>(null)
  const [attempt, setAttempt] = useState(0)

  useEffect(() => {
    const controller = new AbortController()
    load(controller.signal).then(
      (value) => {
        if (controller.signal.aborted) return
        setData(value)
        setState({ kind: 'ok', data: value })
      },
      (error: unknown) => {
        if (controller.signal.aborted) return
        setState({ kind: 'failed', error })
      },
    )
    return () => controller.abort()
    // `key` names the inputs; `load` is a fresh closure on every render.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, attempt])

  const reload = useCallback(() => setAttempt((n) => n + 1), [])
  const set = useCallback((update: (data: T) => T) => {
    setData((previous) => (previous === null ? previous : update(previous)))
    setState((previous) => (previous.kind === 'ok' ? { kind: 'ok', data: update(previous.data) } : previous))
  }, [])
  return { state, data, reload, set }
}
