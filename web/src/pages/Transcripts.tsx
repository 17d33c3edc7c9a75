// Transcripts of recordings: upload one (drop or choose a file) with the speech recognition
// choices, follow its progress, search the transcripts' text, open and delete them.

import { useEffect, useRef, useState } from 'react'
import type { DragEvent } from 'react'
import {
  ASR_PROVIDERS,
  LOCAL_ASR_PROVIDER,
  deleteTranscription,
  getProviders,
  getTranscription,
  listTranscriptions,
  uploadTranscription,
} from '../api.ts'
import type { AsrProvider, Transcription } from '../api.ts'
import { ConfirmButton } from '../components/ConfirmButton.tsx'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Field } from '../components/Field.tsx'
import { Link } from '../components/Link.tsx'
import { LoadMore } from '../components/LoadMore.tsx'
import { ProgressBar } from '../components/ProgressBar.tsx'
import { useI18n } from '../i18n.ts'
import { formatDate, formatDuration } from '../lib/format.ts'
import { ASR_PROVIDER_LABELS, TRANSCRIPT_STATUS_LABELS } from '../lib/labels.ts'
import { TRANSCRIPT_POLL_MS } from '../lib/transcript.ts'
import { useLoad } from '../lib/useLoad.ts'
import { usePaged } from '../lib/usePaged.ts'
import { usePoll } from '../lib/usePoll.ts'

/** Typing pauses this long before the search runs. */
const SEARCH_DELAY_MS = 300
const PAGE_SIZE = 20
/** Running transcripts followed at once, so a long queue does not flood the server. */
const LIVE_LIMIT = 3
/** What the file picker offers; the server reads the format from the bytes. */
const ACCEPT = 'audio/*,video/mp4,video/webm,.flac,.m4a,.mp3,.mp4,.mpeg,.mpga,.ogg,.wav,.webm'

export default function TranscriptsPage() {
  const { t } = useI18n()
  const [search, setSearch] = useState('')
  const [q, setQ] = useState('')

  useEffect(() => {
    const timer = window.setTimeout(() => setQ(search.trim()), SEARCH_DELAY_MS)
    return () => window.clearTimeout(timer)
  }, [search])

  const list = usePaged(
    (cursor, signal) => listTranscriptions({ q, cursor, limit: PAGE_SIZE }, { signal }),
    q,
  )

  const live = list.items.filter((item) => item.status === 'queued' || item.status === 'running').slice(0, LIVE_LIMIT)
  usePoll(live.length > 0, TRANSCRIPT_POLL_MS, async (signal) => {
    const fresh = await Promise.all(live.map((item) => getTranscription(item.id, { signal })))
    for (const item of fresh) list.update(item.id, () => item)
  })

  return (
    <div className="stack">
      <h1>{t('transcripts.title')}</h1>
      <Upload onUploaded={list.reload} />

      <form className="card filters" role="search" onSubmit={(event) => event.preventDefault()}>
        <Field label={t('transcripts.search')}>
          <input type="search" value={search} onChange={(event) => setSearch(event.target.value)} />
        </Field>
      </form>

      {list.error !== null && <ErrorMessage error={list.error} />}
      {list.loaded && list.items.length === 0 && (
        <p className="muted">{q !== '' ? t('transcripts.noMatch') : t('transcripts.empty')}</p>
      )}
      <ul className="items" aria-busy={list.loading}>
        {list.items.map((item) => (
          <TranscriptItem key={item.id} item={item} onDeleted={() => list.remove(item.id)} />
        ))}
      </ul>
      {list.loading && <p className="muted">{t('common.loading')}</p>}
      {list.hasMore && !list.loading && <LoadMore onLoad={list.loadMore} />}
    </div>
  )
}

/** The choices and the drop zone; a dropped or chosen file is sent at once. */
function Upload({ onUploaded }: { onUploaded: () => void }) {
  const { t } = useI18n()
  const [provider, setProvider] = useState<AsrProvider | ''>('')
  const providers = useLoad((signal) => getProviders({ signal }), 'providers')
  const local = providers.data?.find((p) => p.id === LOCAL_ASR_PROVIDER && p.kind === 'asr')
  const [language, setLanguage] = useState('')
  const [speakers, setSpeakers] = useState(false)
  const [over, setOver] = useState(false)
  const [sending, setSending] = useState<string | null>(null)
  const [error, setError] = useState<unknown>(null)
  const input = useRef<HTMLInputElement>(null)

  const send = async (file: File | undefined) => {
    if (file === undefined || sending !== null) return
    setError(null)
    setSending(file.name)
    try {
      await uploadTranscription(file, { provider, language, speakers })
      onUploaded()
    } catch (caught) {
      setError(caught)
    } finally {
      setSending(null)
      if (input.current !== null) input.current.value = ''
    }
  }
  const onDragOver = (event: DragEvent) => {
    event.preventDefault()
    event.dataTransfer.dropEffect = 'copy'
    setOver(true)
  }
  const onDrop = (event: DragEvent) => {
    event.preventDefault()
    setOver(false)
    void send(event.dataTransfer.files[0])
  }

  return (
    <section className="card" aria-labelledby="transcribe-heading">
      <h2 id="transcribe-heading">{t('transcripts.upload')}</h2>
      <div className="grid-2">
        <Field label={t('transcripts.provider')}>
          <select value={provider} onChange={(event) => setProvider(event.target.value as AsrProvider | '')}>
            <option value="">{t('transcripts.providerDefault')}</option>
            {local !== undefined && (
              <option value={LOCAL_ASR_PROVIDER} disabled={!local.available}>
                {local.available
                  ? t(ASR_PROVIDER_LABELS.whisper)
                  : t('transcripts.provider.unavailable', { name: t(ASR_PROVIDER_LABELS.whisper), detail: local.detail })}
              </option>
            )}
            {ASR_PROVIDERS.map((id) => (
              <option key={id} value={id}>
                {t(ASR_PROVIDER_LABELS[id])}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('transcripts.language')} hint={t('transcripts.languageHint')}>
          <input value={language} onChange={(event) => setLanguage(event.target.value)} autoComplete="off" maxLength={16} />
        </Field>
        <label className="check-field span-2">
          <input type="checkbox" checked={speakers} onChange={(event) => setSpeakers(event.target.checked)} />
          {t('transcripts.speakers')}
        </label>
      </div>
      <div
        className={`dropzone${over ? ' dropzone-over' : ''}`}
        onDragEnter={onDragOver}
        onDragOver={onDragOver}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
      >
        {sending !== null ? (
          <p role="status">{t('transcripts.uploading', { name: sending })}</p>
        ) : (
          <>
            <p>{t('transcripts.drop')}</p>
            <button type="button" className="button" onClick={() => input.current?.click()}>
              {t('transcripts.choose')}
            </button>
            <p className="muted">{t('transcripts.formats')}</p>
          </>
        )}
        <input
          ref={input}
          type="file"
          accept={ACCEPT}
          className="visually-hidden"
          tabIndex={-1}
          aria-label={t('transcripts.choose')}
          onChange={(event) => void send(event.target.files?.[0])}
        />
      </div>
      {error !== null && <ErrorMessage error={error} />}
    </section>
  )
}

function TranscriptItem({ item, onDeleted }: { item: Transcription; onDeleted: () => void }) {
  const { t, language } = useI18n()
  const [error, setError] = useState<unknown>(null)
  const headingId = `transcript-${item.id}`
  const running = item.status === 'queued' || item.status === 'running'

  const remove = async () => {
    setError(null)
    try {
      await deleteTranscription(item.id)
      onDeleted()
    } catch (caught) {
      setError(caught)
    }
  }

  return (
    <li className="card item" aria-labelledby={headingId}>
      <div className="item-head">
        <h2 id={headingId} className="item-title">
          <Link to={`/transcripts/${encodeURIComponent(item.id)}`}>{item.title}</Link>
        </h2>
        <span className={`badge badge-${item.status}`}>{t(TRANSCRIPT_STATUS_LABELS[item.status])}</span>
      </div>
      <p className="muted meta">
        <span>{item.source === 'audio' ? t('transcripts.fromLibrary') : t('transcripts.uploaded')}</span>
        <span>{item.provider}</span>
        {item.language !== null && <span>{item.language}</span>}
        <span>{formatDuration(item.duration_ms)}</span>
        <time dateTime={item.created_at}>{formatDate(item.created_at, language)}</time>
      </p>
      {running && <ProgressBar value={item.progress} label={t('transcripts.progress')} />}
      {item.status === 'failed' && item.error !== null && (
        <p className="error-inline">
          {t('library.failedWith')} {item.error.message}
        </p>
      )}
      {error !== null && <ErrorMessage error={error} />}
      <div className="actions">
        <ConfirmButton
          label={t('action.delete')}
          question={t('transcripts.confirmDelete', { title: item.title })}
          confirmLabel={t('action.delete')}
          onConfirm={remove}
        />
      </div>
    </li>
  )
}
