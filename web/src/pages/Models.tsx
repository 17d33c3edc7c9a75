// For admins: the models on this server (ONNX Runtime, Kokoro, Piper voices, Whisper), where
// they live and how much disk they take; pull one in the background, or remove it. Below them,
// the speech round trip: each voice engine speaks a sentence, Whisper hears it.

import { useEffect, useState } from 'react'
import { ApiError, listModels, pullModel, removeModel } from '../api.ts'
import type { Model, SelftestReport } from '../api.ts'
import { ConfirmButton } from '../components/ConfirmButton.tsx'
import { ErrorMessage } from '../components/ErrorMessage.tsx'
import { ProgressBar } from '../components/ProgressBar.tsx'
import { useI18n } from '../i18n.ts'
import type { MessageKey } from '../i18n.ts'
import { formatBytes, formatPercent, formatSeconds } from '../lib/format.ts'
import { QUALITY_LABELS } from '../lib/labels.ts'
import { useLoad } from '../lib/useLoad.ts'
import { usePoll } from '../lib/usePoll.ts'
import { startSelftest, useSelftest } from '../lib/useSelftest.ts'
import { providerName } from '../lib/voices.ts'

/** How often the list is asked again while a model downloads. */
export const PULL_POLL_MS = 1500

export default function ModelsPage() {
  const { t, language } = useI18n()
  const models = useLoad((signal) => listModels({ signal }), 'models')
  const list = models.data
  const pulling = list?.models.some((m) => m.pull?.state === 'running') ?? false

  usePoll(pulling, PULL_POLL_MS, async (signal) => {
    const next = await listModels({ signal })
    models.set(() => next)
  })

  const replace = (row: Model) =>
    models.set((data) => ({ ...data, models: data.models.map((m) => (m.name === row.name ? row : m)) }))

  return (
    <div className="stack">
      <h1>{t('models.title')}</h1>
      <section className="card stack-sm">
        <div className="card-head">
          <p className="muted">{t('models.intro')}</p>
          <button type="button" className="button button-quiet" onClick={models.reload}>
            {t('action.refresh')}
          </button>
        </div>
        {models.state.kind === 'failed' && <ErrorMessage error={models.state.error} />}
        {list !== null && (
          <>
            <dl className="rows">
              <div className="row">
                <dt>{t('models.dir')}</dt>
                <dd className="mono">{list.dir}</dd>
              </div>
              <div className="row">
                <dt>{t('models.diskUsed')}</dt>
                <dd>{formatBytes(list.disk_used_bytes, language)}</dd>
              </div>
            </dl>
            {list.models.length === 0 ? (
              <p className="muted">{t('models.none')}</p>
            ) : (
              <div className="table-wrap">
                <table className="table">
                  <thead>
                    <tr>
                      <th scope="col">{t('models.name')}</th>
                      <th scope="col">{t('models.kind')}</th>
                      <th scope="col">{t('models.quality')}</th>
                      <th scope="col">{t('models.languages')}</th>
                      <th scope="col" className="num">
                        {t('models.size')}
                      </th>
                      <th scope="col">{t('models.license')}</th>
                      <th scope="col">{t('models.installed')}</th>
                      <th scope="col">{t('models.actions')}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.models.map((model) => (
                      <ModelRow key={model.name} model={model} onPulled={replace} onRemoved={models.reload} />
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </>
        )}
      </section>
      <Selftest />
    </div>
  )
}

function ModelRow({
  model,
  onPulled,
  onRemoved,
}: {
  model: Model
  onPulled: (model: Model) => void
  onRemoved: () => void
}) {
  const { t, language } = useI18n()
  const [error, setError] = useState<unknown>(null)
  const [busy, setBusy] = useState(false)
  const pull = model.pull
  const running = pull?.state === 'running'

  const start = async () => {
    setBusy(true)
    setError(null)
    try {
      onPulled(await pullModel(model.name))
    } catch (caught) {
      setError(caught)
    } finally {
      setBusy(false)
    }
  }
  const remove = async () => {
    setError(null)
    try {
      await removeModel(model.name)
      onRemoved()
    } catch (caught) {
      setError(caught)
    }
  }

  const qualityKey = model.quality === null ? undefined : (QUALITY_LABELS as Partial<Record<string, MessageKey>>)[model.quality]
  const quality = qualityKey === undefined ? model.quality : t(qualityKey)

  return (
    <tr>
      <th scope="row" className="mono">
        {model.name}
      </th>
      <td>{model.kind === 'runtime' ? 'ONNX Runtime' : providerName(model.kind)}</td>
      <td>{quality ?? '–'}</td>
      <td>
        {model.languages.length === 0
          ? '–'
          : model.languages.map((tag) => (tag === 'mul' ? t('models.multilingual') : tag)).join(', ')}
      </td>
      <td className="num">{formatBytes(model.size_bytes, language)}</td>
      <td>
        {model.license === '' ? '–' : model.license}
        {!model.commercial_use && (
          <>
            {' '}
            <span className="badge badge-warn">{t('voice.nonCommercial')}</span>
          </>
        )}
      </td>
      <td>
        {model.installed ? t('models.yes') : t('models.no')}
        {!model.verified && (
          <>
            {' '}
            <span className="badge badge-warn" title={t('models.unverifiedHint')}>
              {t('models.unverified')}
            </span>
          </>
        )}
      </td>
      <td>
        <div className="stack-sm">
          {running ? (
            <>
              <span>{t('models.pulling')}</span>
              <ProgressBar
                value={pull.total_bytes > 0 ? pull.done_bytes / pull.total_bytes : 0}
                label={t('models.progress', { name: model.name })}
              />
              <span className="muted">
                {t('models.progressText', {
                  done: formatBytes(pull.done_bytes, language),
                  total: formatBytes(pull.total_bytes > 0 ? pull.total_bytes : model.size_bytes, language),
                })}
              </span>
            </>
          ) : (
            <span className="actions">
              {!model.installed && (
                <button
                  type="button"
                  className="button"
                  onClick={() => void start()}
                  disabled={busy}
                  aria-label={t('models.pullNamed', { name: model.name })}
                >
                  {t('models.pull')}
                </button>
              )}
              {model.installed && (
                <ConfirmButton
                  label={t('models.remove')}
                  question={t(model.kind === 'whisper' ? 'models.confirmRemoveWhisper' : 'models.confirmRemove', {
                    name: model.name,
                  })}
                  confirmLabel={t('models.remove')}
                  onConfirm={remove}
                />
              )}
            </span>
          )}
          {pull?.state === 'failed' && (
            <p className="error-inline">
              {pull.error === null ? t('models.failedNoReason') : t('models.failed', { error: pull.error })}
            </p>
          )}
          {error !== null && <ErrorMessage error={error} />}
        </div>
      </td>
    </tr>
  )
}

/** The speech round trip: runs in the background (see `useSelftest`), then a row per voice. */
function Selftest() {
  const { t } = useI18n()
  const selftest = useSelftest()
  const running = selftest.kind === 'running'
  const noWhisper =
    selftest.kind === 'failed' && selftest.error instanceof ApiError && selftest.error.code === 'provider_unavailable'

  return (
    <section className="card stack-sm" aria-labelledby="models-selftest" aria-busy={running}>
      <div className="card-head">
        <h2 id="models-selftest">{t('models.selftest')}</h2>
        <span className="actions">
          <span role="status" className="muted">
            {running && <Elapsed since={selftest.startedAt} />}
          </span>
          <button type="button" className="button" disabled={running} onClick={startSelftest}>
            {t('models.selftestRun')}
          </button>
        </span>
      </div>
      <p className="muted">{t('models.selftestIntro')}</p>
      {selftest.kind === 'failed' && <ErrorMessage error={selftest.error} />}
      {noWhisper && <p>{t('models.selftestPullHint')}</p>}
      {selftest.kind === 'done' && <SelftestResult report={selftest.report} />}
    </section>
  )
}

/**
 * "Speaking and listening… 12 s", counting up every second; screen readers hear the words once,
 * not each second (a timer is not announced).
 */
function Elapsed({ since }: { since: number }) {
  const { t } = useI18n()
  const [now, setNow] = useState(() => Date.now())
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 1000)
    return () => window.clearInterval(timer)
  }, [])
  return (
    <>
      {t('models.selftestRunning')}{' '}
      <span role="timer">{t('models.selftestSeconds', { seconds: Math.max(0, Math.floor((now - since) / 1000)) })}</span>
    </>
  )
}

function SelftestResult({ report }: { report: SelftestReport }) {
  const { t, language } = useI18n()
  const seconds = (ms: number | null) => formatSeconds(ms === null ? null : ms / 1000, language)
  return (
    <>
      <dl className="rows">
        <div className="row">
          <dt>{t('models.selftestSentence')}</dt>
          <dd>{report.sentence}</dd>
        </div>
        <div className="row">
          <dt>{t('models.selftestModel')}</dt>
          <dd className="mono">{report.model}</dd>
        </div>
      </dl>
      {report.voices.length === 0 ? (
        <p className="muted">{t('models.selftestNoVoices')}</p>
      ) : (
        <>
          <div className="table-wrap">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">{t('models.selftestVoice')}</th>
                  <th scope="col">{t('models.selftestHeard')}</th>
                  <th scope="col" className="num">
                    {t('models.selftestWer')}
                  </th>
                  <th scope="col" className="num">
                    {t('models.selftestAudio')}
                  </th>
                  <th scope="col" className="num">
                    {t('models.selftestTime')}
                  </th>
                </tr>
              </thead>
              <tbody>
                {report.voices.map((check) => (
                  <tr key={check.voice}>
                    <th scope="row" className="mono">
                      {check.voice}
                    </th>
                    <td>
                      {check.error === null ? (
                        (check.heard ?? '–')
                      ) : (
                        <span className="error-inline">{t('models.selftestFailed', { error: check.error })}</span>
                      )}
                    </td>
                    <td className="num">{formatPercent(check.word_error_rate, language)}</td>
                    <td className="num">{seconds(check.audio_ms)}</td>
                    <td className="num">{seconds(check.elapsed_ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <p className="muted">{t('models.selftestWerHint')}</p>
        </>
      )}
    </>
  )
}
