// Plays one finished audio with its waveform; keeps its height while loading so the page
// never jumps.

import { useEffect, useImperativeHandle, useRef, useState } from 'react'
import type { Ref } from 'react'
import { Waveform } from './Waveform.tsx'
import { getPeaks } from '../api.ts'
import type { Audio, Chapter } from '../api.ts'
import { useI18n } from '../i18n.ts'
import { formatDuration } from '../lib/format.ts'

/** What the player shows of an audio: a library audio, or any recording with a title. */
export type PlayerAudio = Pick<Audio, 'title' | 'duration_ms' | 'peaks_url'>

/** Lets a page move the player, e.g. to a word of a transcript. */
export interface PlayerHandle {
  /** Jumps to `seconds` and plays from there. */
  playFrom: (seconds: number) => void
}

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
  onTime,
  handle,
}: {
  audio: PlayerAudio
  src: string
  chapters?: readonly Chapter[]
  subtitles?: Track
  autoPlay?: boolean
  /** Told the position in seconds as it plays and after every seek. */
  onTime?: (seconds: number) => void
  handle?: Ref<PlayerHandle>
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
    onTime?.(seconds)
  }
  // `timeupdate` comes about four times a second, too seldom to follow single words: while it
  // plays, a listener gets the position on every frame as well.
  const [playing, setPlaying] = useState(false)
  const onTimeRef = useRef(onTime)
  useEffect(() => {
    onTimeRef.current = onTime
  })
  const following = playing && onTime !== undefined
  useEffect(() => {
    if (!following) return
    let frame = 0
    const tick = () => {
      if (element.current !== null) onTimeRef.current?.(element.current.currentTime)
      frame = window.requestAnimationFrame(tick)
    }
    frame = window.requestAnimationFrame(tick)
    return () => window.cancelAnimationFrame(frame)
  }, [following])
  useImperativeHandle(handle, () => ({
    playFrom: (seconds: number) => {
      seek(seconds)
      if (element.current !== null) playQuietly(element.current)
    },
  }))
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
        onTimeUpdate={(event) => {
          const seconds = event.currentTarget.currentTime
          setPosition(seconds)
          onTime?.(seconds)
        }}
        onPlay={() => setPlaying(true)}
        onPause={() => setPlaying(false)}
        onEnded={() => setPlaying(false)}
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
