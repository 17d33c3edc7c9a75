// Plays one finished audio with its waveform; keeps its height while loading so the page
// never jumps.

import { useEffect, useRef, useState } from 'react'
import { Waveform } from './Waveform.tsx'
import { getPeaks } from '../api.ts'
import type { Audio, Chapter } from '../api.ts'
import { useI18n } from '../i18n.ts'
import { formatDuration } from '../lib/format.ts'

export interface Track {
  src: string
  label: string
  srcLang: string
}

export function AudioPlayer({
  audio,
  src,
  chapters = [],
  subtitles,
  autoPlay = false,
}: {
  audio: Audio
  src: string
  chapters?: readonly Chapter[]
  subtitles?: Track
  autoPlay?: boolean
}) {
  const { t } = useI18n()
  const element = useRef<HTMLAudioElement>(null)
  const [peaks, setPeaks] = useState<number[] | null>(null)
  const [position, setPosition] = useState(0)
  const [durationS, setDurationS] = useState((audio.duration_ms ?? 0) / 1000)
  const trackRef = useRef<HTMLTrackElement>(null)
  const [caption, setCaption] = useState('')

  // An <audio> element draws no captions, so the current cue is shown below it.
  useEffect(() => {
    const track = trackRef.current?.track
    if (track === undefined) return
    track.mode = 'hidden'
    const onCue = () => {
      const cues = track.activeCues
      const texts: string[] = []
      for (let i = 0; cues !== null && i < cues.length; i++) {
        const text = (cues[i] as (TextTrackCue & { text?: unknown }) | undefined)?.text
        if (typeof text === 'string') texts.push(text)
      }
      setCaption(texts.join(' '))
    }
    track.addEventListener('cuechange', onCue)
    return () => track.removeEventListener('cuechange', onCue)
  }, [subtitles?.src])

  useEffect(() => {
    const controller = new AbortController()
    getPeaks(audio, { signal: controller.signal }).then(
      (body) => setPeaks(body.peaks),
      () => {
        if (!controller.signal.aborted) setPeaks([])
      },
    )
    return () => controller.abort()
  }, [audio])

  useEffect(() => {
    if (autoPlay && element.current !== null) playQuietly(element.current)
  }, [autoPlay, src])

  const seek = (seconds: number) => {
    const el = element.current
    if (el === null || !Number.isFinite(seconds)) return
    el.currentTime = seconds
    setPosition(seconds)
  }
  const durationMs = durationS * 1000
  const progress = durationS > 0 ? Math.min(1, position / durationS) : 0

  return (
    <div className="player">
      <div className="waveform-box">
        {peaks !== null && peaks.length > 0 ? (
          <Waveform
            peaks={peaks}
            progress={progress}
            durationMs={durationMs}
            label={t('player.seek', { title: audio.title })}
            onSeek={(fraction) => seek(fraction * durationS)}
          />
        ) : (
          <div className="waveform-placeholder" aria-hidden="true" />
        )}
      </div>
      <audio
        ref={element}
        className="audio"
        controls
        preload="metadata"
        src={src}
        aria-label={t('player.label', { title: audio.title })}
        onTimeUpdate={(event) => setPosition(event.currentTarget.currentTime)}
        onLoadedMetadata={(event) => {
          const d = event.currentTarget.duration
          if (Number.isFinite(d) && d > 0) setDurationS(d)
        }}
      >
        {subtitles !== undefined && (
          <track ref={trackRef} kind="subtitles" src={subtitles.src} srcLang={subtitles.srcLang} label={subtitles.label} default />
        )}
      </audio>
      {subtitles !== undefined && (
        <p className="caption" aria-live="off">
          {caption.replace(/<[^>]+>/g, '')}
        </p>
      )}
      {chapters.length > 0 && (
        <ol className="chapters" aria-label={t('player.chapters')}>
          {chapters.map((chapter) => (
            <li key={`${chapter.startTime}-${chapter.title}`}>
              <button
                type="button"
                className="link-button"
                aria-current={position >= chapter.startTime && isCurrent(chapters, chapter, position) ? 'true' : undefined}
                onClick={() => {
                  seek(chapter.startTime)
                  if (element.current !== null) playQuietly(element.current)
                }}
              >
                <span className="mono">{formatDuration(chapter.startTime * 1000)}</span> {chapter.title}
              </button>
            </li>
          ))}
        </ol>
      )}
    </div>
  )
}

function isCurrent(chapters: readonly Chapter[], chapter: Chapter, position: number): boolean {
  const next = chapters.find((c) => c.startTime > chapter.startTime)
  return next === undefined || position < next.startTime
}

/** Starts playback; a browser that blocks autoplay just leaves the controls to the user. */
function playQuietly(element: HTMLMediaElement): void {
  try {
    const started = element.play() as Promise<void> | undefined
    started?.catch(() => undefined)
  } catch {
    // Nothing to do: the controls stay there.
  }
}
