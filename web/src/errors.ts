// Turns any failure into words for the user, by the server's `error.code` (never its text).

import { ApiError } from './api.ts'
import type { I18n, MessageKey } from './i18n.ts'

export interface Described {
  /** What happened, in the user's language. */
  title: string
  /** The server's own message when it adds something (field limits, provider names). */
  detail: string | null
}

const BY_CODE: Partial<Record<string, MessageKey>> = {
  network_error: 'error.network',
  unauthenticated: 'error.unauthenticated',
  invalid_credentials: 'error.invalidCredentials',
  forbidden: 'error.forbidden',
  csrf_rejected: 'error.csrf',
  registration_closed: 'error.registrationClosed',
  not_found: 'error.notFound',
  conflict: 'error.conflict',
  payload_too_large: 'error.tooLarge',
  unsupported_media_type: 'error.unsupportedMedia',
  quota_exceeded: 'error.quotaExceeded',
  overloaded: 'error.overloaded',
  not_ready: 'error.notReady',
  provider_unavailable: 'error.providerUnavailable',
  text_too_long: 'error.textTooLong',
  unknown_voice: 'error.unknownVoice',
  invalid_request: 'error.invalidRequest',
  internal: 'error.internal',
}

/** Codes whose server message names the specifics (which field, which provider, what limit). */
const SHOW_SERVER_MESSAGE = new Set([
  'invalid_request',
  'text_too_long',
  'unknown_voice',
  'conflict',
  'provider_unavailable',
  'payload_too_large',
])

export function describeError(error: unknown, t: I18n['t']): Described {
  if (!(error instanceof ApiError)) return { title: t('error.unexpected'), detail: null }
  if (error.code === 'rate_limited') {
    return {
      title:
        error.retryAfter === null
          ? t('error.rateLimited')
          : t('error.rateLimitedFor', { seconds: error.retryAfter }),
      detail: null,
    }
  }
  const key = BY_CODE[error.code]
  if (key === undefined) return { title: error.message, detail: null }
  const detail = SHOW_SERVER_MESSAGE.has(error.code) && error.message !== '' ? error.message : null
  return { title: t(key), detail }
}

/** The short text of an error, for places with room for one line. */
export function errorText(error: unknown, t: I18n['t']): string {
  const { title, detail } = describeError(error, t)
  return detail === null ? title : `${title} ${detail}`
}
