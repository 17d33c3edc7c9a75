// A failure shown in words, with the request id to quote when the server broke.

import { ApiError } from '../api.ts'
import { describeError } from '../errors.ts'
import { useI18n } from '../i18n.ts'

export function ErrorMessage({ error, title }: { error: unknown; title?: string }) {
  const { t } = useI18n()
  const { title: what, detail } = describeError(error, t)
  const requestId = error instanceof ApiError && error.status >= 500 ? error.requestId : null
  return (
    <div role="alert" className="error">
      {title !== undefined && <p className="error-title">{title}</p>}
      <p className={title === undefined ? 'error-title' : undefined}>{what}</p>
      {detail !== null && <p>{detail}</p>}
      {requestId !== null && <p className="muted">{t('error.requestId', { id: requestId })}</p>}
    </div>
  )
}
