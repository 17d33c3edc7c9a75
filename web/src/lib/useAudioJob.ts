// Follows an audio while it is being made: live events until a final state, then the full
// object (file URL, duration) once more from the server.

import { useEffect, useState } from 'react'
import { getAudio, isFinal, watchAudio } from '../api.ts'
import type { Audio } from '../api.ts'

/**
 * `live` false leaves the audio as it is: each live audio holds one of the browser's few
 * connections per server, so long lists follow only a handful.
 */
export function useAudioJob(initial: Audio | null, live = true): Audio | null {
  const [source, setSource] = useState(initial)
  const [audio, setAudio] = useState(initial)
  // A new audio (or the same one queued again by a retry) starts over.
  if (initial !== source) {
    setSource(initial)
    setAudio(initial)
  }

  const id = initial?.id
  const watching = live && initial !== null && !isFinal(initial.status)
  useEffect(() => {
    if (id === undefined || !watching) return
    let active = true
    const stop = watchAudio(id, (event) => {
      if (!active) return
      setAudio((current) =>
        current === null ? current : { ...current, status: event.status, progress: event.progress, error: event.error },
      )
      if (isFinal(event.status)) {
        getAudio(id).then(
          (full) => {
            if (active) setAudio(full)
          },
          () => undefined,
        )
      }
    })
    return () => {
      active = false
      stop()
    }
  }, [id, watching, source])

  return audio
}
