// One podcast episode: render progress, then the player with chapters and subtitles and
// the MP3/VTT/SRT downloads.

import { useEffect, useState } from 'react'
import { AudioPlayer } from './AudioPlayer.tsx'
import { ProgressBar } from './ProgressBar.tsx'
import { audioFileUrl, getChapters, subtitlesUrl } from '../api.ts'
import type { Chapter, Episode } from '../api.ts'
import { useI18n } from '../i18n.ts'
import { formatDuration } from '../lib/format.ts'
import { STATUS_LABELS } from '../lib/labels.ts'
import { useAudioJob } from '../lib/useAudioJob.ts'

export function EpisodeView({
  podcastId,
  episode,
  language,
}: {
  podcastId: string
  episode: Episode
  /** The show's language, for the subtitle track. */
  language: string | null
}) {
  const { t } = useI18n()
  const audio = useAudioJob(episode.audio) ?? episode.audio
  const [chapters, setChapters] = useState<Chapter[]>([])
  const done = audio.status === 'succeeded'

  useEffect(() => {
    if (!done) return
    const controller = new AbortController()
    getChapters(podcastId, episode.id, { signal: controller.signal }).then(setChapters, () => undefined)
    return () => controller.abort()
  }, [done, podcastId, episode.id])

  if (audio.status === 'queued' || audio.status === 'running') {
    return (
      <div className="stack-sm">
        <p>{t(STATUS_LABELS[audio.status])}</p>
        <ProgressBar value={audio.progress} label={t('wizard.rendering')} />
      </div>
    )
  }
  if (!done) {
    return (
      <div role="alert" className="error">
        <p className="error-title">{t(STATUS_LABELS[audio.status])}</p>
        {audio.error !== null && <p>{audio.error.message}</p>}
      </div>
    )
  }
  return (
    <div className="stack-sm">
      <p className="muted">{formatDuration(audio.duration_ms)}</p>
      <AudioPlayer
        audio={audio}
        src={audioFileUrl(audio)}
        chapters={chapters}
        subtitles={{
          src: subtitlesUrl(podcastId, episode.id, 'vtt'),
          label: t('episode.subtitles'),
          srcLang: language ?? 'en',
        }}
      />
      <div className="actions">
        <a className="button button-quiet" href={audioFileUrl(audio, true)} download>
          {t('episode.downloadMp3')}
        </a>
        <a className="button button-quiet" href={subtitlesUrl(podcastId, episode.id, 'vtt')} download>
          {t('episode.downloadVtt')}
        </a>
        <a className="button button-quiet" href={subtitlesUrl(podcastId, episode.id, 'srt')} download>
          {t('episode.downloadSrt')}
        </a>
      </div>
    </div>
  )
}
