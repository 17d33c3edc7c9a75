// One transcript: its progress while it is heard, then the player beside the text, the word
// being spoken highlighted, a click on a word or a segment's time playing from there, and the
// downloads.

import { Fragment, memo, useCallback, useEffect, useMemo, useRef, useState } from 'react'
import type { FocusEvent, KeyboardEvent } from 'react'
import {
  ApiError,
  deleteTranscription,
  getTranscription,
  isTranscriptFinal,
  transcriptDownloadUrl,
  transcriptPeaksUrl,
} from '../api.ts'
import type { Transcript, TranscriptFormat, TranscriptSegment, TranscriptWord, Transcription } from '../api.ts'
import { AudioPlayer } from '../components/AudioPlayer.tsx'
import type { PlayerAudio, PlayerHandle } from '../components/AudioPlayer.tsx'
import { ConfirmButton } from '../components/ConfirmButton.tsx'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Link } from '../components/Link.tsx'
import { ProgressBar } from '../components/ProgressBar.tsx'
import { useI18n } from '../i18n.ts'
import type { MessageKey } from '../i18n.ts'
import { formatDuration } from '../lib/format.ts'
import { TRANSCRIPT_STATUS_LABELS } from '../lib/labels.ts'
import { TRANSCRIPT_POLL_MS, spaceBetween, speakerNumber, spanAt, wordsBySegment } from '../lib/transcript.ts'
import type { WordRange } from '../lib/transcript.ts'
import { useLoad } from '../lib/useLoad.ts'
import { usePoll } from '../lib/usePoll.ts'
import { navigate } from '../router.ts'

const DOWNLOADS: readonly { format: TranscriptFormat; label: MessageKey }[] = [
  { format: 'json', label: 'transcripts.downloadJson' },
  { format: 'srt', label: 'transcripts.downloadSrt' },
  { format: 'vtt', label: 'transcripts.downloadVtt' },
  { format: 'txt', label: 'transcripts.downloadTxt' },
]

export default function TranscriptPage({ params }: { params: Record<string, string> }) {
  const { t } = useI18n()
  const id = params.id ?? ''
  const load = useLoad((signal) => getTranscription(id, { signal }), id)
  const item = load.data
  const [error, setError] = useState<unknown>(null)

  usePoll(item !== null && !isTranscriptFinal(item.status), TRANSCRIPT_POLL_MS, async (signal) => {
    const fresh = await getTranscription(id, { signal })
    load.set(() => fresh)
  })

  const remove = async () => {
    setError(null)
    try {
      await deleteTranscription(id)
      navigate('/transcripts')
    } catch (caught) {
      setError(caught)
    }
  }

  if (item === null) {
    return (
      <div className="stack">
        <Link to="/transcripts">{t('transcripts.back')}</Link>
        {load.state.kind === 'failed' ? <ErrorMessage error={load.state.error} /> : <p className="muted">{t('common.loading')}</p>}
      </div>
    )
  }

  const running = item.status === 'queued' || item.status === 'running'
  return (
    <div className="stack">
      <Link to="/transcripts">{t('transcripts.back')}</Link>
      <div className="item-head">
        <h1 className="item-title">{item.title}</h1>
        <span className={`badge badge-${item.status}`}>{t(TRANSCRIPT_STATUS_LABELS[item.status])}</span>
      </div>
      {running && <ProgressBar value={item.progress} label={t('transcripts.progress')} />}
      {item.status === 'failed' && item.error !== null && (
        <ErrorMessage error={new ApiError(200, item.error.code, item.error.message)} title={t('transcripts.failed')} />
      )}
      {item.status === 'succeeded' && item.transcript !== undefined && (
        <Reader item={item} transcript={item.transcript} />
      )}
      {load.state.kind === 'failed' && <ErrorMessage error={load.state.error} />}
      {error !== null && <ErrorMessage error={error} />}
      <div className="actions">
        {item.status === 'succeeded' &&
          DOWNLOADS.map(({ format, label }) => (
            <a key={format} className="button button-quiet" href={transcriptDownloadUrl(item, format)} download>
              {t(label)}
            </a>
          ))}
        <ConfirmButton
          label={t('action.delete')}
          question={t('transcripts.confirmDelete', { title: item.title })}
          confirmLabel={t('action.delete')}
          onConfirm={remove}
        />
      </div>
    </div>
  )
}

/** The player and the transcript side by side (one above the other on a phone). */
function Reader({ item, transcript }: { item: Transcription; transcript: Transcript }) {
  const { t } = useI18n()
  const player = useRef<PlayerHandle>(null)
  // Only the indexes are state, so the many ticks of a playing recording within one word
  // render nothing.
  const [currentWord, setCurrentWord] = useState(-1)
  const [currentSegment, setCurrentSegment] = useState(-1)
  // The player reloads its waveform when this changes, so it is made once per transcript.
  const { title, duration_ms: durationMs, audio_id: audioId } = item
  const audio = useMemo<PlayerAudio>(
    () => ({ title, duration_ms: durationMs, peaks_url: transcriptPeaksUrl({ audio_id: audioId }) }),
    [title, durationMs, audioId],
  )
  const { segments, words } = transcript
  const ranges = useMemo(() => wordsBySegment(segments, words), [segments, words])
  const follow = useCallback(
    (seconds: number) => {
      setCurrentWord(spanAt(words, seconds))
      setCurrentSegment(spanAt(segments, seconds))
    },
    [words, segments],
  )
  const seek = useCallback((seconds: number) => player.current?.playFrom(seconds), [])

  // Keyboard users move between words with the arrow keys; one word at a time is in the tab order.
  const [focusWord, setFocusWord] = useState(0)
  const box = useRef<HTMLDivElement>(null)
  const wordOf = (target: EventTarget): number | null => {
    const index = target instanceof HTMLElement ? target.dataset.word : undefined
    return index === undefined ? null : Number(index)
  }
  const onKeyDown = (event: KeyboardEvent) => {
    const index = wordOf(event.target)
    if (index === null) return
    const next =
      event.key === 'ArrowRight' || event.key === 'ArrowDown'
        ? index + 1
        : event.key === 'ArrowLeft' || event.key === 'ArrowUp'
          ? index - 1
          : event.key === 'Home'
            ? 0
            : event.key === 'End'
              ? words.length - 1
              : null
    if (next === null) return
    event.preventDefault()
    const clamped = Math.max(0, Math.min(words.length - 1, next))
    box.current?.querySelector<HTMLElement>(`[data-word="${clamped}"]`)?.focus()
  }
  // A word focused by any means (keys, Tab, a click) becomes the one in the tab order.
  const onFocus = (event: FocusEvent) => {
    const index = wordOf(event.target)
    if (index !== null) setFocusWord(index)
  }

  // The spoken word stays in view where the transcript has its own scroll box (wide screens);
  // on a phone the page is left where the reader put it.
  useEffect(() => {
    const container = box.current
    if (container === null || container.scrollHeight <= container.clientHeight) return
    const element = container.querySelector<HTMLElement>(`[data-word="${currentWord}"]`)
    if (element === null) return
    const outer = container.getBoundingClientRect()
    const inner = element.getBoundingClientRect()
    if (inner.top < outer.top) container.scrollTop += inner.top - outer.top
    else if (inner.bottom > outer.bottom) container.scrollTop += inner.bottom - outer.bottom
  }, [currentWord])

  return (
    <div className="transcript-layout">
      <div className="transcript-player">
        <AudioPlayer audio={audio} src={item.recording_url} onTime={follow} handle={player} />
      </div>
      <div
        ref={box}
        className="transcript"
        role="region"
        aria-label={t('transcripts.text', { title: item.title })}
        onKeyDown={onKeyDown}
        onFocus={onFocus}
      >
        {segments.length === 0 ? (
          <p className="muted">{transcript.text === '' ? t('transcripts.nothingHeard') : transcript.text}</p>
        ) : (
          <ol className="segments">
            {segments.map((segment, index) => (
              <Segment
                key={`${segment.start}-${index}`}
                segment={segment}
                words={words}
                range={ranges[index] as WordRange}
                current={index === currentSegment}
                currentWord={currentWord}
                focusWord={focusWord}
                onSeek={seek}
              />
            ))}
          </ol>
        )}
      </div>
    </div>
  )
}

interface SegmentProps {
  segment: TranscriptSegment
  words: readonly TranscriptWord[]
  /** This segment's words. */
  range: WordRange
  current: boolean
  /** The spoken word's index in `words`, or -1. */
  currentWord: number
  /** The word in the tab order. */
  focusWord: number
  onSeek: (seconds: number) => void
}

/**
 * One segment: its speaker and time (a button that plays from its start), then its words as
 * buttons. Memoised: while playing, only the segments whose highlight changes render again.
 */
const Segment = memo(function Segment({ segment, words, range, current, currentWord, focusWord, onSeek }: SegmentProps) {
  const { t } = useI18n()
  const time = formatDuration(segment.start * 1000)
  const speaker = segment.speaker
  const number = speaker === undefined ? null : speakerNumber(speaker)
  return (
    <li className="segment" aria-current={current ? 'true' : undefined}>
      <p className="segment-head">
        {speaker !== undefined && (
          <span className="segment-speaker">{number === null ? speaker : t('transcripts.speaker', { n: number })}</span>
        )}
        <button
          type="button"
          className="link-button mono"
          aria-label={t('transcripts.playFrom', { time })}
          onClick={() => onSeek(segment.start)}
        >
          {time}
        </button>
      </p>
      <p className="segment-text">
        {range.to > range.from
          ? words.slice(range.from, range.to).map((word, offset) => {
              const index = range.from + offset
              const previous = offset === 0 ? undefined : words[index - 1]
              return (
                <Fragment key={index}>
                  {previous !== undefined && spaceBetween(previous.word, word.word) ? ' ' : null}
                  <button
                    type="button"
                    className="word"
                    data-word={index}
                    tabIndex={index === focusWord ? 0 : -1}
                    aria-current={index === currentWord ? 'true' : undefined}
                    onClick={() => onSeek(word.start)}
                  >
                    {word.word.trim()}
                  </button>
                </Fragment>
              )
            })
          : segment.text}
      </p>
    </li>
  )
}, sameHighlight)

/** A segment renders again only when its own highlight or focus changes. */
function sameHighlight(a: SegmentProps, b: SegmentProps): boolean {
  const mine = (range: WordRange, index: number) => (index >= range.from && index < range.to ? index : -1)
  return (
    a.segment === b.segment &&
    a.words === b.words &&
    a.range.from === b.range.from &&
    a.range.to === b.range.to &&
    a.current === b.current &&
    a.onSeek === b.onSeek &&
    mine(a.range, a.currentWord) === mine(b.range, b.currentWord) &&
    mine(a.range, a.focusWord) === mine(b.range, b.focusWord)
  )
}
