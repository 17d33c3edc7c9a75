// One show: edit it, publish it, hand out its feed, and list its episodes.

import { useState } from 'react'
import type { FormEvent } from 'react'
import {
  absoluteUrl,
  deleteEpisode,
  deletePodcast,
  getPodcast,
  listEpisodes,
  publicFeedUrl,
  rotateFeedToken,
  updatePodcast,
} from '../api.ts'
import type { Podcast } from '../api.ts'
import { ConfirmButton } from '../components/ConfirmButton.tsx'
import { CopyButton } from '../components/CopyButton.tsx'
import { EpisodeView } from '../components/EpisodeView.tsx'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Field } from '../components/Field.tsx'
import { Link } from '../components/Link.tsx'
import { LoadMore } from '../components/LoadMore.tsx'
import { ShowFields } from '../components/ShowFields.tsx'
import { useI18n } from '../i18n.ts'
import { formatDate } from '../lib/format.ts'
import { showInput } from '../lib/show.ts'
import { useLoad } from '../lib/useLoad.ts'
import { usePaged } from '../lib/usePaged.ts'
import { navigate } from '../router.ts'

export default function ShowPage({ params }: { params: Record<string, string> }) {
  const { t } = useI18n()
  const id = params.id ?? ''
  const show = useLoad((signal) => getPodcast(id, { signal }), id)
  const [editing, setEditing] = useState(false)
  const [error, setError] = useState<unknown>(null)

  if (show.state.kind === 'failed' && show.data === null) return <ErrorMessage error={show.state.error} />
  const podcast = show.data
  if (podcast === null) return <p className="muted">{t('common.loading')}</p>

  const save = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    setError(null)
    try {
      const updated = await updatePodcast(podcast.id, showInput(new FormData(event.currentTarget)))
      show.set(() => updated)
      setEditing(false)
    } catch (caught) {
      setError(caught)
    }
  }
  const remove = async () => {
    try {
      await deletePodcast(podcast.id)
      navigate('/podcasts')
    } catch (caught) {
      setError(caught)
    }
  }

  return (
    <div className="stack">
      <p>
        <Link to="/podcasts">← {t('podcasts.title')}</Link>
      </p>
      <div className="page-head">
        <h1>{podcast.title}</h1>
        <Link to={`/podcasts/${podcast.id}/new`} className="button">
          {t('podcasts.newEpisode')}
        </Link>
      </div>

      <section className="card stack-sm" aria-labelledby="show-details">
        <div className="card-head">
          <h2 id="show-details">{t('podcasts.details')}</h2>
          {!editing && (
            <button type="button" className="button button-quiet" onClick={() => setEditing(true)}>
              {t('action.edit')}
            </button>
          )}
        </div>
        {editing ? (
          <form className="form" onSubmit={(event) => void save(event)}>
            <ShowFields initial={podcast} />
            <div className="actions">
              <button type="submit" className="button">
                {t('action.save')}
              </button>
              <button type="button" className="button button-quiet" onClick={() => setEditing(false)}>
                {t('action.cancel')}
              </button>
            </div>
          </form>
        ) : (
          <dl className="rows">
            <Row label={t('podcasts.description')} value={podcast.description} />
            <Row label={t('podcasts.language')} value={podcast.language} />
            <Row label={t('podcasts.author')} value={podcast.author} />
            <Row label={t('podcasts.visibility')} value={podcast.public ? t('podcasts.public') : t('podcasts.private')} />
          </dl>
        )}
        {error !== null && <ErrorMessage error={error} />}
      </section>

      <Feed podcast={podcast} onChange={(next) => show.set(() => next)} />

      <Episodes podcast={podcast} />

      <section className="card stack-sm" aria-labelledby="show-danger">
        <h2 id="show-danger">{t('podcasts.danger')}</h2>
        <div className="actions">
          <ConfirmButton
            label={t('podcasts.delete')}
            question={t('podcasts.confirmDelete', { title: podcast.title })}
            confirmLabel={t('action.delete')}
            onConfirm={remove}
          />
        </div>
      </section>
    </div>
  )
}

function Row({ label, value }: { label: string; value: string | null }) {
  return (
    <div className="row">
      <dt>{label}</dt>
      <dd>{value === null || value === '' ? '–' : value}</dd>
    </div>
  )
}

function Feed({ podcast, onChange }: { podcast: Podcast; onChange: (podcast: Podcast) => void }) {
  const { t } = useI18n()
  const [error, setError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)
  // A private show's link carries a secret token, which only a rotation hands out.
  const url = podcast.public || (podcast.feed_url ?? null) !== null ? absoluteUrl(publicFeedUrl(podcast)) : null

  const rotate = async () => {
    setBusy(true)
    setError(null)
    try {
      const { feed_url } = await rotateFeedToken(podcast.id)
      onChange({ ...podcast, feed_url })
    } catch (caught) {
      setError(caught)
    } finally {
      setBusy(false)
    }
  }
  const togglePublic = async () => {
    setBusy(true)
    setError(null)
    try {
      onChange(await updatePodcast(podcast.id, { public: !podcast.public }))
    } catch (caught) {
      setError(caught)
    } finally {
      setBusy(false)
    }
  }

  return (
    <section className="card stack-sm" aria-labelledby="show-feed">
      <h2 id="show-feed">{t('feed.title')}</h2>
      <label className="check-field">
        <input type="checkbox" checked={podcast.public} onChange={() => void togglePublic()} disabled={busy} />
        <span>{t('podcasts.publicToggle')}</span>
      </label>
      <p className="muted">{podcast.public ? t('feed.publicHint') : t('feed.privateHint')}</p>
      {url !== null ? (
        <>
          <Field label={t('feed.url')}>
            <input readOnly value={url} className="mono-input" onFocus={(event) => event.target.select()} />
          </Field>
          <div className="actions">
            <CopyButton text={url} label={t('feed.copy')} />
            {!podcast.public && (
              <ConfirmButton
                label={t('feed.rotate')}
                question={t('feed.confirmRotate')}
                confirmLabel={t('feed.rotate')}
                onConfirm={rotate}
                disabled={busy}
              />
            )}
          </div>
        </>
      ) : (
        <button type="button" className="button button-quiet" onClick={() => void rotate()} disabled={busy}>
          {t('feed.create')}
        </button>
      )}
      {error !== null && <ErrorMessage error={error} />}
    </section>
  )
}

function Episodes({ podcast }: { podcast: Podcast }) {
  const { t, language } = useI18n()
  const list = usePaged((cursor, signal) => listEpisodes(podcast.id, { cursor }, { signal }), podcast.id)
  const [error, setError] = useState<unknown>(null)

  return (
    <section className="stack-sm" aria-labelledby="show-episodes">
      <h2 id="show-episodes">{t('podcasts.episodes')}</h2>
      {list.error !== null && <ErrorMessage error={list.error} />}
      {error !== null && <ErrorMessage error={error} />}
      {list.loaded && list.items.length === 0 && (
        <p className="muted">
          {t('podcasts.noEpisodes')} <Link to={`/podcasts/${podcast.id}/new`}>{t('podcasts.newEpisode')}</Link>
        </p>
      )}
      <ul className="items">
        {list.items.map((episode) => (
          <li key={episode.id} className="card item">
            <div className="item-head">
              <h3 className="item-title">{episode.title}</h3>
              <time className="muted" dateTime={episode.audio.created_at}>
                {formatDate(episode.audio.created_at, language)}
              </time>
            </div>
            <EpisodeView podcastId={podcast.id} episode={episode} language={podcast.language} />
            <div className="actions">
              <ConfirmButton
                label={t('action.delete')}
                question={t('library.confirmDelete', { title: episode.title })}
                confirmLabel={t('action.delete')}
                onConfirm={async () => {
                  setError(null)
                  try {
                    await deleteEpisode(podcast.id, episode.id)
                    list.remove(episode.id)
                  } catch (caught) {
                    setError(caught)
                  }
                }}
              />
            </div>
          </li>
        ))}
      </ul>
      {list.hasMore && !list.loading && <LoadMore onLoad={list.loadMore} />}
    </section>
  )
}
