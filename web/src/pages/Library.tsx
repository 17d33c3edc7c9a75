// Every audio of the user, newest first: search, filter, play, download, share, transcribe
// (and open the transcript once it is heard), rename, delete, retry.

import { useEffect, useState } from 'react'
import type { FormEvent } from 'react'
import {
  absoluteUrl,
  audioFileUrl,
  deleteAudio,
  getTranscription,
  isFinal,
  isTranscriptFinal,
  listAudios,
  renameAudio,
  retryAudio,
  shareAudio,
  transcribeAudio,
} from '../api.ts'
import type { Audio, AudioKind, AudioStatus, TranscriptRef } from '../api.ts'
import { AudioPlayer } from '../components/AudioPlayer.tsx'
import { ConfirmButton } from '../components/ConfirmButton.tsx'
import { CopyButton } from '../components/CopyButton.tsx'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Field } from '../components/Field.tsx'
import { Link } from '../components/Link.tsx'
import { LoadMore } from '../components/LoadMore.tsx'
import { ProgressBar } from '../components/ProgressBar.tsx'
import { useI18n } from '../i18n.ts'
import { formatBytes, formatDate, formatDuration } from '../lib/format.ts'
import { KIND_LABELS, STATUS_LABELS } from '../lib/labels.ts'
import { TRANSCRIPT_POLL_MS } from '../lib/transcript.ts'
import { useAudioJob } from '../lib/useAudioJob.ts'
import { usePaged } from '../lib/usePaged.ts'
import { usePoll } from '../lib/usePoll.ts'
import { navigate } from '../router.ts'

/** Typing pauses this long before the search runs. */
const SEARCH_DELAY_MS = 300
const PAGE_SIZE = 20
/** Running audios followed live at once; browsers allow about six connections per server. */
const LIVE_LIMIT = 3
/** Transcripts being made followed at once, so a long queue does not flood the server. */
const TRANSCRIBING_LIMIT = 3

export default function LibraryPage() {
  const { t } = useI18n()
  const [search, setSearch] = useState('')
  const [q, setQ] = useState('')
  const [kind, setKind] = useState<AudioKind | ''>('')
  const [status, setStatus] = useState<AudioStatus | ''>('')

  useEffect(() => {
    const timer = window.setTimeout(() => setQ(search.trim()), SEARCH_DELAY_MS)
    return () => window.clearTimeout(timer)
  }, [search])

  const list = usePaged(
    (cursor, signal) => listAudios({ q, kind, status, cursor, limit: PAGE_SIZE }, { signal }),
    JSON.stringify([q, kind, status]),
  )

  const live = new Set(
    list.items
      .filter((a) => a.status === 'queued' || a.status === 'running')
      .slice(0, LIVE_LIMIT)
      .map((a) => a.id),
  )
  // Audios whose newest transcript is being made: asked after until it is done, when the
  // item offers to open it.
  const transcribing = list.items
    .filter((a) => a.transcript !== null && !isTranscriptFinal(a.transcript.status))
    .slice(0, TRANSCRIBING_LIMIT)
  usePoll(transcribing.length > 0, TRANSCRIPT_POLL_MS, async (signal) => {
    const fresh = await Promise.all(
      transcribing.map((a) => getTranscription((a.transcript as TranscriptRef).id, { signal })),
    )
    fresh.forEach((transcript, i) => {
      const audio = transcribing[i] as Audio
      list.update(audio.id, (current) => ({ ...current, transcript: { id: transcript.id, status: transcript.status } }))
    })
  })

  return (
    <div className="stack">
      <h1>{t('library.title')}</h1>
      <form className="card filters" role="search" onSubmit={(event) => event.preventDefault()}>
        <Field label={t('library.search')}>
          <input type="search" value={search} onChange={(event) => setSearch(event.target.value)} />
        </Field>
        <Field label={t('library.kind')}>
          <select value={kind} onChange={(event) => setKind(event.target.value as AudioKind | '')}>
            <option value="">{t('library.all')}</option>
            {(Object.keys(KIND_LABELS) as AudioKind[]).map((k) => (
              <option key={k} value={k}>
                {t(KIND_LABELS[k])}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('library.status')}>
          <select value={status} onChange={(event) => setStatus(event.target.value as AudioStatus | '')}>
            <option value="">{t('library.all')}</option>
            {(Object.keys(STATUS_LABELS) as AudioStatus[]).map((s) => (
              <option key={s} value={s}>
                {t(STATUS_LABELS[s])}
              </option>
            ))}
          </select>
        </Field>
      </form>

      {list.error !== null && <ErrorMessage error={list.error} />}
      {list.loaded && list.items.length === 0 && (
        <p className="muted">{q !== '' || kind !== '' || status !== '' ? t('library.noMatch') : t('library.empty')}</p>
      )}
      <ul className="items" aria-busy={list.loading}>
        {list.items.map((audio) => (
          <LibraryItem
            key={audio.id}
            audio={audio}
            live={live.has(audio.id)}
            onChange={(next) => list.update(audio.id, () => next)}
            onDeleted={() => list.remove(audio.id)}
          />
        ))}
      </ul>
      {list.loading && <p className="muted">{t('common.loading')}</p>}
      {list.hasMore && !list.loading && <LoadMore onLoad={list.loadMore} />}
    </div>
  )
}

function LibraryItem({
  audio: initial,
  live,
  onChange,
  onDeleted,
}: {
  audio: Audio
  live: boolean
  onChange: (audio: Audio) => void
  onDeleted: () => void
}) {
  const { t, language } = useI18n()
  const audio = useAudioJob(initial, live) ?? initial
  // A finished job is handed up, which frees its live slot for the next running one.
  useEffect(() => {
    if (audio !== initial && isFinal(audio.status) && audio.status !== initial.status) onChange(audio)
  }, [audio, initial, onChange])
  const [playing, setPlaying] = useState(false)
  const [renaming, setRenaming] = useState(false)
  const [title, setTitle] = useState(audio.title)
  const [error, setError] = useState<unknown>(null)
  const headingId = `audio-${audio.id}`

  const rename = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    try {
      onChange(await renameAudio(audio.id, title.trim()))
      setRenaming(false)
    } catch (caught) {
      setError(caught)
    }
  }
  const remove = async () => {
    setError(null)
    try {
      await deleteAudio(audio.id)
      onDeleted()
    } catch (caught) {
      setError(caught)
    }
  }
  const [transcribing, setTranscribing] = useState(false)
  // The transcript page follows the job and shows the text beside the player once it is heard.
  const transcribe = async () => {
    setError(null)
    setTranscribing(true)
    try {
      const transcript = await transcribeAudio(audio.id)
      // Back in the library, the item follows it and offers to open it once it is heard.
      onChange({ ...audio, transcript: { id: transcript.id, status: transcript.status } })
      navigate(`/transcripts/${encodeURIComponent(transcript.id)}`)
    } catch (caught) {
      setError(caught)
      setTranscribing(false)
    }
  }
  const retry = async () => {
    setError(null)
    try {
      onChange(await retryAudio(audio.id))
    } catch (caught) {
      setError(caught)
    }
  }

  const running = audio.status === 'queued' || audio.status === 'running'
  return (
    <li className="card item" aria-labelledby={headingId}>
      <div className="item-head">
        {renaming ? (
          <form className="inline-form" onSubmit={(event) => void rename(event)}>
            <Field label={<span className="visually-hidden">{t('library.newTitle')}</span>} className="field-inline">
              <input value={title} onChange={(event) => setTitle(event.target.value)} required autoFocus />
            </Field>
            <button type="submit" className="button">
              {t('action.save')}
            </button>
            <button type="button" className="button button-quiet" onClick={() => setRenaming(false)}>
              {t('action.cancel')}
            </button>
          </form>
        ) : (
          <h2 id={headingId} className="item-title">
            {audio.title}
          </h2>
        )}
        <span className={`badge badge-${audio.status}`}>{t(STATUS_LABELS[audio.status])}</span>
      </div>
      <p className="muted meta">
        <span>{t(KIND_LABELS[audio.kind])}</span>
        {audio.voice !== null && <span>{audio.voice}</span>}
        <span>{formatDuration(audio.duration_ms)}</span>
        <span>{formatBytes(audio.size_bytes, language)}</span>
        <time dateTime={audio.created_at}>{formatDate(audio.created_at, language)}</time>
      </p>
      {running && <ProgressBar value={audio.progress} label={t('studio.progress')} />}
      {audio.status === 'failed' && audio.error !== null && (
        <p className="error-inline">
          {t('library.failedWith')} {audio.error.message}
        </p>
      )}
      {playing && audio.status === 'succeeded' && <AudioPlayer audio={audio} src={audioFileUrl(audio)} autoPlay />}
      {error !== null && <ErrorMessage error={error} />}
      <div className="actions">
        {audio.status === 'succeeded' && (
          <>
            <button
              type="button"
              className="button button-quiet"
              aria-expanded={playing}
              aria-label={`${playing ? t('library.hidePlayer') : t('library.play')}: ${audio.title}`}
              onClick={() => setPlaying((p) => !p)}
            >
              {playing ? t('library.hidePlayer') : t('library.play')}
            </button>
            <a className="button button-quiet" href={audioFileUrl(audio, true)} download>
              {t('action.download')}
            </a>
            <CopyButton
              label={t('library.share')}
              text={async () => absoluteUrl((await shareAudio(audio.id)).url)}
            />
            <TranscriptAction
              audio={audio}
              transcribing={transcribing}
              onTranscribe={() => void transcribe()}
            />
          </>
        )}
        {audio.status === 'failed' && (
          <button type="button" className="button" onClick={() => void retry()}>
            {t('action.retry')}
          </button>
        )}
        {!renaming && (
          <button
            type="button"
            className="button button-quiet"
            onClick={() => {
              setTitle(audio.title)
              setRenaming(true)
            }}
          >
            {t('library.rename')}
          </button>
        )}
        <ConfirmButton
          label={t('action.delete')}
          question={t('library.confirmDelete', { title: audio.title })}
          confirmLabel={t('action.delete')}
          onConfirm={remove}
        />
      </div>
    </li>
  )
}

/**
 * What the item offers for its transcript: open the newest one once it is heard, follow it
 * while it is made, or transcribe the audio (again, when the last attempt failed).
 */
function TranscriptAction({
  audio,
  transcribing,
  onTranscribe,
}: {
  audio: Audio
  transcribing: boolean
  onTranscribe: () => void
}) {
  const { t } = useI18n()
  const transcript = audio.transcript
  if (transcript !== null && transcript.status !== 'failed') {
    const label = transcript.status === 'succeeded' ? t('library.openTranscript') : t('library.transcribing')
    return (
      <Link
        className="button button-quiet"
        to={`/transcripts/${encodeURIComponent(transcript.id)}`}
        aria-label={`${label}: ${audio.title}`}
      >
        {label}
      </Link>
    )
  }
  return (
    <button
      type="button"
      className="button button-quiet"
      aria-label={`${t('library.transcribe')}: ${audio.title}`}
      disabled={transcribing}
      onClick={onTranscribe}
    >
      {t('library.transcribe')}
    </button>
  )
}
