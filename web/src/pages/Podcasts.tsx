// The user's shows, and a form to start a new one.

import { useState } from 'react'
import type { FormEvent } from 'react'
import { createPodcast, listPodcasts } from '../api.ts'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { Link } from '../components/Link.tsx'
import { LoadMore } from '../components/LoadMore.tsx'
import { ShowFields } from '../components/ShowFields.tsx'
import { useI18n } from '../i18n.ts'
import { showInput } from '../lib/show.ts'
import { usePaged } from '../lib/usePaged.ts'
import { navigate } from '../router.ts'

export default function PodcastsPage() {
  const { t } = useI18n()
  const list = usePaged((cursor, signal) => listPodcasts({ cursor, limit: 50 }, { signal }), 'podcasts')
  const [creating, setCreating] = useState(false)

  return (
    <div className="stack">
      <div className="page-head">
        <h1>{t('podcasts.title')}</h1>
        <button type="button" className="button" aria-expanded={creating} onClick={() => setCreating((c) => !c)}>
          {t('podcasts.new')}
        </button>
      </div>
      {creating && <ShowForm onCancel={() => setCreating(false)} />}
      {list.error !== null && <ErrorMessage error={list.error} />}
      {list.loaded && list.items.length === 0 && <p className="muted">{t('podcasts.empty')}</p>}
      <ul className="items">
        {list.items.map((podcast) => (
          <li key={podcast.id} className="card item">
            <div className="item-head">
              <h2 className="item-title">
                <Link to={`/podcasts/${podcast.id}`}>{podcast.title}</Link>
              </h2>
              <span className={`badge ${podcast.public ? 'badge-succeeded' : 'badge-queued'}`}>
                {podcast.public ? t('podcasts.public') : t('podcasts.private')}
              </span>
            </div>
            {podcast.description !== null && podcast.description !== '' && <p className="muted">{podcast.description}</p>}
          </li>
        ))}
      </ul>
      {list.hasMore && !list.loading && <LoadMore onLoad={list.loadMore} />}
    </div>
  )
}

function ShowForm({ onCancel }: { onCancel: () => void }) {
  const { t } = useI18n()
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(null)

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      const podcast = await createPodcast(showInput(new FormData(event.currentTarget)))
      navigate(`/podcasts/${podcast.id}`)
    } catch (caught) {
      setError(caught)
      setBusy(false)
    }
  }

  return (
    <form className="card form" onSubmit={(event) => void submit(event)} aria-label={t('podcasts.new')}>
      <ShowFields />
      {error !== null && <ErrorMessage error={error} />}
      <div className="actions">
        <button type="submit" className="button" disabled={busy}>
          {t('podcasts.create')}
        </button>
        <button type="button" className="button button-quiet" onClick={onCancel}>
          {t('action.cancel')}
        </button>
      </div>
    </form>
  )
}
