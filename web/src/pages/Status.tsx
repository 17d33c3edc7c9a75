// The status page: server version, readiness checks and refresh; public, for operators.

import { useEffect, useState } from 'react'
import { ApiError, getHealth, getReadiness } from '../api.ts'
import type { Health, Readiness } from '../api.ts'
import { useI18n } from '../i18n.ts'
import type { I18n, Language } from '../i18n.ts'

type Outcome =
  | { kind: 'loaded'; health: Health; readiness: Readiness; checkedAt: Date }
  | { kind: 'failed'; error: unknown }

async function loadStatus(signal: AbortSignal): Promise<Outcome> {
  const [health, readiness] = await Promise.all([getHealth({ signal }), getReadiness({ signal })])
  return { kind: 'loaded', health, readiness, checkedAt: new Date() }
}

/** Server messages are shown as sent; failures with no server behind them are translated. */
function errorText(error: unknown, t: I18n['t']): string {
  if (error instanceof ApiError) {
    return error.code === 'network_error' ? t('error.network') : error.message
  }
  return t('error.unexpected')
}

export default function StatusPage() {
  const { t, language } = useI18n()
  const [outcome, setOutcome] = useState<Outcome | null>(null)
  const [loading, setLoading] = useState(true)
  const [attempt, setAttempt] = useState(0)

  useEffect(() => {
    const controller = new AbortController()
    loadStatus(controller.signal)
      .catch((error: unknown): Outcome => ({ kind: 'failed', error }))
      .then((next) => {
        if (controller.signal.aborted) return
        setOutcome(next)
        setLoading(false)
      })
    return () => controller.abort()
  }, [attempt])

  const refresh = () => {
    setLoading(true)
    setAttempt((n) => n + 1)
  }

  return (
    <div className="stack">
      <p className="tagline">{t('app.tagline')}</p>
        <section className="card" aria-labelledby="status-heading" aria-busy={loading}>
          <div className="card-head">
            <h2 id="status-heading">{t('status.heading')}</h2>
            <button type="button" className="button" onClick={refresh} disabled={loading}>
              {loading ? t('action.refreshing') : t('action.refresh')}
            </button>
          </div>

          <p role="status" aria-live="polite" className="overall">
            <OverallBadge outcome={outcome} loading={loading} t={t} />
          </p>

          {outcome?.kind === 'failed' && (
            <div role="alert" className="error">
              <p className="error-title">{t('status.failed')}</p>
              <p>{errorText(outcome.error, t)}</p>
              {outcome.error instanceof ApiError && outcome.error.requestId !== null && (
                <p className="muted">{t('error.requestId', { id: outcome.error.requestId })}</p>
              )}
            </div>
          )}

          {outcome?.kind === 'loaded' && (
            <>
              <dl className="rows">
                <div className="row">
                  <dt>{t('status.version')}</dt>
                  <dd className="mono">{outcome.health.version}</dd>
                </div>
                <CheckRow label={t('check.database')} ok={outcome.readiness.checks.database} t={t} />
                <CheckRow label={t('check.storage')} ok={outcome.readiness.checks.storage} t={t} />
              </dl>
              <p className="muted">
                {t('status.checkedAt', { time: formatTime(outcome.checkedAt, language) })}
              </p>
            </>
          )}
        </section>
    </div>
  )
}

function OverallBadge({
  outcome,
  loading,
  t,
}: {
  outcome: Outcome | null
  loading: boolean
  t: I18n['t']
}) {
  if (loading && outcome === null) {
    return <span className="badge badge-pending">{t('status.checking')}</span>
  }
  if (outcome === null || outcome.kind === 'failed') {
    return <span className="badge badge-bad">{t('status.unavailable')}</span>
  }
  return outcome.readiness.status === 'ok' ? (
    <span className="badge badge-ok">{t('status.ok')}</span>
  ) : (
    <span className="badge badge-warn">{t('status.degraded')}</span>
  )
}

function CheckRow({ label, ok, t }: { label: string; ok: boolean; t: I18n['t'] }) {
  return (
    <div className="row">
      <dt>{label}</dt>
      <dd className={ok ? 'check check-ok' : 'check check-bad'}>
        <span className="dot" aria-hidden="true" />
        {ok ? t('check.ok') : t('check.failing')}
      </dd>
    </div>
  )
}

function formatTime(date: Date, language: Language): string {
  return new Intl.DateTimeFormat(language, { timeStyle: 'medium' }).format(date)
}
