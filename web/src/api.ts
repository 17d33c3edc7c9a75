// The one client for the aimake HTTP API (shared API.md): paths, types and error codes
// live here so components never build URLs or parse responses by hand.

/** Error codes from API.md, plus `network_error`, which only the client produces. */
export type ErrorCode =
  | 'invalid_request'
  | 'text_too_long'
  | 'unknown_voice'
  | 'unauthenticated'
  | 'invalid_credentials'
  | 'forbidden'
  | 'csrf_rejected'
  | 'registration_closed'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'quota_exceeded'
  | 'overloaded'
  | 'not_ready'
  | 'provider_unavailable'
  | 'internal'
  | 'network_error'
  // Newer servers may add codes; keep them usable without losing autocompletion.
  | (string & {})

/** The server's error body: `{"error": {"code", "message", "details"}}`. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown }
}

/** A failed call: `code` is what callers switch on, `message` is safe to show. */
export class ApiError extends Error {
  /** HTTP status; 0 when no response arrived. */
  readonly status: number
  readonly code: ErrorCode
  /** Field errors and the like, as sent by the server; `null` when absent. */
  readonly details: unknown
  /** The server's `x-request-id`, to quote when reporting a 5xx. */
  readonly requestId: string | null

  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    details: unknown = null,
    requestId: string | null = null,
  ) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.details = details
    this.requestId = requestId
  }
}

export interface RequestOptions extends Omit<RequestInit, 'body'> {
  /** Sent as a JSON body with the matching content type. */
  json?: unknown
  /**
   * Says whether a non-2xx JSON answer is data rather than an error, e.g. readiness
   * reports "degraded" with a 503.
   */
  acceptError?: (status: number, body: unknown) => boolean
}

/** Calls the API at `path` (same origin) and returns the parsed JSON body; 204 gives `undefined`. */
export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const { json, acceptError, headers, ...init } = options
  const sendHeaders = new Headers(headers)
  sendHeaders.set('Accept', 'application/json')
  if (json !== undefined) sendHeaders.set('Content-Type', 'application/json')

  let response: Response
  try {
    response = await fetch(path, {
      ...init,
      headers: sendHeaders,
      credentials: 'same-origin',
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    })
  } catch (cause) {
    // Let callers that abort (unmount, refresh) tell that apart from a dead server.
    if (cause instanceof DOMException && cause.name === 'AbortError') throw cause
    throw new ApiError(0, 'network_error', 'Could not reach the server')
  }

  const requestId = response.headers.get('x-request-id')
  if (response.status === 204) return undefined as T

  const text = await response.text()
  let body: unknown
  let parsed = true
  try {
    body = text === '' ? undefined : JSON.parse(text)
  } catch {
    parsed = false
  }

  if (response.ok || (parsed && acceptError?.(response.status, body) === true)) {
    if (!parsed) {
      throw new ApiError(
        response.status,
        'internal',
        `Unexpected response from the server (HTTP ${response.status})`,
        null,
        requestId,
      )
    }
    return body as T
  }

  if (parsed && isErrorBody(body)) {
    const { code, message, details } = body.error
    throw new ApiError(response.status, code, message, details ?? null, requestId)
  }
  throw new ApiError(
    response.status,
    'internal',
    `The server answered HTTP ${response.status} without an error description`,
    null,
    requestId,
  )
}

function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== 'object' || value === null || !('error' in value)) return false
  const error = value.error
  return (
    typeof error === 'object' &&
    error !== null &&
    'code' in error &&
    typeof error.code === 'string' &&
    'message' in error &&
    typeof error.message === 'string'
  )
}

/** Options every read helper accepts. */
export interface CallOptions {
  signal?: AbortSignal
}

// ---- Health -------------------------------------------------------------------------

export interface Health {
  status: string
  version: string
}

export interface Readiness {
  status: 'ok' | 'degraded'
  checks: { database: boolean; storage: boolean }
}

/** `GET /health`: the process is up, and which version it runs. */
export function getHealth(options: CallOptions = {}): Promise<Health> {
  return request<Health>('/health', options)
}

/**
 * `GET /health/ready`. A 503 carrying the readiness body means "degraded" and is
 * returned as data; a 503 with the error shape still throws.
 */
export function getReadiness(options: CallOptions = {}): Promise<Readiness> {
  return request<Readiness>('/health/ready', {
    ...options,
    acceptError: (status, body) => status === 503 && isReadiness(body),
  })
}

function isReadiness(value: unknown): value is Readiness {
  if (typeof value !== 'object' || value === null) return false
  if (!('status' in value) || (value.status !== 'ok' && value.status !== 'degraded')) return false
  if (!('checks' in value) || typeof value.checks !== 'object' || value.checks === null) {
    return false
  }
  const checks = value.checks
  return (
    'database' in checks &&
    typeof checks.database === 'boolean' &&
    'storage' in checks &&
    typeof checks.storage === 'boolean'
  )
}
