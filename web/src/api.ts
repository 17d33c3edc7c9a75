// The one client for the aimake HTTP API (docs/api.md): paths, types and error codes
// live here so components never build URLs or parse responses by hand.

/** Error codes from docs/api.md, plus `network_error`, which only the client produces. */
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
  | 'unknown_model'
  | 'unknown_notifier'
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
  /** Seconds from `Retry-After` (429, 503), when the server sent it. */
  readonly retryAfter: number | null

  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    details: unknown = null,
    requestId: string | null = null,
    retryAfter: number | null = null,
  ) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.details = details
    this.requestId = requestId
    this.retryAfter = retryAfter
  }
}

export interface RequestOptions extends Omit<RequestInit, 'body'> {
  /** Sent as a JSON body with the matching content type. */
  json?: unknown
  /** Sent as `multipart/form-data`; the browser writes the boundary into the content type. */
  form?: FormData
  /**
   * Says whether a non-2xx JSON answer is data rather than an error, e.g. readiness
   * reports "degraded" with a 503.
   */
  acceptError?: (status: number, body: unknown) => boolean
  /**
   * A 401 here is an answer rather than an expired session (login, setup, the first
   * `/api/me`), so the session-expired handler is not told.
   */
  expect401?: boolean
}

let onUnauthenticated: (() => void) | null = null

/**
 * Registers what happens when a signed-in call answers 401 `unauthenticated` (the session
 * expired or was revoked): the app sends the user to the login page and back afterwards.
 */
export function setUnauthenticatedHandler(handler: (() => void) | null): void {
  onUnauthenticated = handler
}

/** Calls the API at `path` (same origin) and returns the parsed JSON body; 204 gives `undefined`. */
export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await send(path, options, 'application/json')
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

  if (response.ok || (parsed && options.acceptError?.(response.status, body) === true)) {
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
  throw failure(response, parsed ? body : undefined, options)
}

/** Like `request`, for endpoints that answer with bytes (voice previews). */
export async function requestBlob(path: string, options: RequestOptions = {}): Promise<Blob> {
  const response = await send(path, options, '*/*')
  if (response.ok) return response.blob()
  let body: unknown
  try {
    body = JSON.parse(await response.text())
  } catch {
    body = undefined
  }
  throw failure(response, body, options)
}

async function send(path: string, options: RequestOptions, accept: string): Promise<Response> {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { json, form, acceptError, expect401, headers, ...init } = options
  const sendHeaders = new Headers(headers)
  sendHeaders.set('Accept', accept)
  if (json !== undefined) sendHeaders.set('Content-Type', 'application/json')
  try {
    return await fetch(path, {
      ...init,
      headers: sendHeaders,
      credentials: 'same-origin',
      ...(json !== undefined ? { body: JSON.stringify(json) } : form !== undefined ? { body: form } : {}),
    })
  } catch (cause) {
    // Let callers that abort (unmount, refresh) tell that apart from a dead server.
    if (cause instanceof DOMException && cause.name === 'AbortError') throw cause
    throw new ApiError(0, 'network_error', 'Could not reach the server')
  }
}

function failure(response: Response, body: unknown, options: RequestOptions): ApiError {
  const requestId = response.headers.get('x-request-id')
  const retryAfterHeader = Number.parseInt(response.headers.get('retry-after') ?? '', 10)
  const retryAfter = Number.isFinite(retryAfterHeader) ? retryAfterHeader : null
  if (isErrorBody(body)) {
    const { code, message, details } = body.error
    if (response.status === 401 && code === 'unauthenticated' && options.expect401 !== true) {
      onUnauthenticated?.()
    }
    return new ApiError(response.status, code, message, details ?? null, requestId, retryAfter)
  }
  return new ApiError(
    response.status,
    'internal',
    `The server answered HTTP ${response.status} without an error description`,
    null,
    requestId,
    retryAfter,
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

// ---- Shared shapes -------------------------------------------------------------------

/** A cursor page: newest first, `next_cursor` is null on the last page. */
export interface Page<T> {
  items: T[]
  next_cursor: string | null
}

export interface PageQuery {
  limit?: number
  cursor?: string | null
}

/** Builds `path?a=..&b=..`, leaving out empty values so the server's defaults apply. */
function withQuery(path: string, query: Record<string, string | number | null | undefined>): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value))
  }
  const text = params.toString()
  return text === '' ? path : `${path}?${text}`
}

/** Accepts a bare array or a page, for list endpoints whose shape docs/api.md leaves open. */
function itemsOf<T>(body: T[] | Page<T>): T[] {
  return Array.isArray(body) ? body : body.items
}

const seg = encodeURIComponent

// ---- Accounts -------------------------------------------------------------------------

export type Role = 'user' | 'admin'
export type RegistrationPolicy = 'open' | 'invite' | 'closed'

export interface Quota {
  /** null means unlimited. */
  chars_per_month: number | null
  chars_used_this_month: number
}

export interface User {
  id: string
  email: string
  display_name: string | null
  role: Role
  created_at: string
  quota: Quota
}

export interface SetupState {
  needed: boolean
  /** Sent by servers that tell the registration policy up front; else the form adapts to errors. */
  registration?: RegistrationPolicy
}

export function getSetup(options: CallOptions = {}): Promise<SetupState> {
  return request<SetupState>('/api/setup', options)
}

export interface SetupInput {
  setup_token: string
  email: string
  password: string
  display_name?: string
}

export function completeSetup(input: SetupInput): Promise<User> {
  return request<User>('/api/setup', { method: 'POST', json: input, expect401: true })
}

export interface RegisterInput {
  email: string
  password: string
  display_name?: string
  invite_code?: string
}

export function register(input: RegisterInput): Promise<User> {
  return request<User>('/api/auth/register', { method: 'POST', json: input, expect401: true })
}

export function login(email: string, password: string): Promise<User> {
  return request<User>('/api/auth/login', {
    method: 'POST',
    json: { email, password },
    expect401: true,
  })
}

export function logout(): Promise<void> {
  return request<void>('/api/auth/logout', { method: 'POST', expect401: true })
}

/** The signed-in user; a 401 here just means nobody is signed in. */
export function getMe(options: CallOptions = {}): Promise<User> {
  return request<User>('/api/me', { ...options, expect401: true })
}

/** `PATCH /api/me {display_name}`. */
export function updateProfile(input: { display_name: string }): Promise<User> {
  return request<User>('/api/me', { method: 'PATCH', json: input })
}

/** `PUT /api/me/password`; other sessions are signed out, this one stays. */
export function changePassword(input: {
  current_password: string
  new_password: string
}): Promise<void> {
  return request<void>('/api/me/password', { method: 'PUT', json: input })
}

export interface ApiToken {
  id: string
  name: string
  created_at: string
  last_used_at?: string | null
}

export interface CreatedToken {
  id: string
  name: string
  /** Shown once; the server keeps only its hash. */
  token: string
}

export async function listTokens(options: CallOptions = {}): Promise<ApiToken[]> {
  return itemsOf(await request<ApiToken[] | Page<ApiToken>>('/api/tokens', options))
}

export function createToken(name: string): Promise<CreatedToken> {
  return request<CreatedToken>('/api/tokens', { method: 'POST', json: { name } })
}

export function revokeToken(id: string): Promise<void> {
  return request<void>(`/api/tokens/${seg(id)}`, { method: 'DELETE' })
}

// ---- Voices ---------------------------------------------------------------------------

export type ProviderId =
  | 'kokoro'
  | 'piper'
  | 'local'
  | 'openai'
  | 'elevenlabs'
  | 'tencent'
  | (string & {})

/** Bytes fetched so far of a model the server is downloading. */
export interface DownloadProgress {
  done_bytes: number
  total_bytes: number
}

export interface Provider {
  id: ProviderId
  kind: string
  available: boolean
  /** What the provider runs on, or how to enable it when it is not available. */
  detail: string
  /** Set while the server downloads this provider's model in the background (first run). */
  progress?: DownloadProgress | null
}

/** `high`: neural (Kokoro, Piper high) and cloud voices; `good`: Piper medium/low; `basic`: espeak-ng. */
export type VoiceQuality = 'high' | 'good' | 'basic'

export interface Voice {
  /** `provider:voice` */
  id: string
  provider: ProviderId
  name: string
  language: string
  gender: string | null
  quality: VoiceQuality
  /** SPDX id of the voice's licence; null for cloud and espeak-ng voices. */
  license: string | null
  /** False when the voice's licence forbids commercial use. */
  commercial_use: boolean
  /** True on the one voice the server picks by default for this voice's language. */
  default: boolean
}

export function getProviders(options: CallOptions = {}): Promise<Provider[]> {
  return request<Provider[]>('/api/providers', options)
}

export function getVoices(
  filter: { provider?: string; language?: string } = {},
  options: CallOptions = {},
): Promise<Voice[]> {
  return request<Voice[]>(withQuery('/api/voices', filter), options)
}

/** A short sample of the voice, as audio bytes. */
export function previewVoice(id: string): Promise<Blob> {
  return requestBlob(`/api/voices/${seg(id)}/preview`, { method: 'POST' })
}

// ---- Audios ---------------------------------------------------------------------------

export type AudioKind = 'tts' | 'podcast' | 'upload'
export type AudioStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled'
export type AudioFormat = 'mp3' | 'wav'

export interface Audio {
  id: string
  title: string
  kind: AudioKind
  status: AudioStatus
  progress: number
  voice: string | null
  format: AudioFormat
  speed: number
  chars: number
  duration_ms: number | null
  size_bytes: number | null
  error: { code: string; message: string } | null
  file_url: string | null
  peaks_url: string | null
  /** The audio's newest transcript, or null when it has none. */
  transcript: TranscriptRef | null
  created_at: string
  updated_at: string
}

/** Enough of a transcript to link to it and say whether it is done. */
export interface TranscriptRef {
  id: string
  status: TranscriptStatus
}

/** States after which an audio never changes again by itself. */
export function isFinal(status: AudioStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'canceled'
}

export interface CreateAudioInput {
  text: string
  voice: string
  title?: string
  format?: AudioFormat
  speed?: number
}

export function createAudio(input: CreateAudioInput): Promise<Audio> {
  return request<Audio>('/api/audios', { method: 'POST', json: input })
}

export interface AudioQuery extends PageQuery {
  kind?: AudioKind | ''
  status?: AudioStatus | ''
  q?: string
}

export function listAudios(query: AudioQuery = {}, options: CallOptions = {}): Promise<Page<Audio>> {
  return request<Page<Audio>>(withQuery('/api/audios', { ...query }), options)
}

export function getAudio(id: string, options: CallOptions = {}): Promise<Audio> {
  return request<Audio>(`/api/audios/${seg(id)}`, options)
}

export function renameAudio(id: string, title: string): Promise<Audio> {
  return request<Audio>(`/api/audios/${seg(id)}`, { method: 'PATCH', json: { title } })
}

export function deleteAudio(id: string): Promise<void> {
  return request<void>(`/api/audios/${seg(id)}`, { method: 'DELETE' })
}

export function retryAudio(id: string): Promise<Audio> {
  return request<Audio>(`/api/audios/${seg(id)}/retry`, { method: 'POST' })
}

export interface ShareLink {
  /** Path (or absolute URL) of the signed public link. */
  url: string
  expires_at: string
}

export function shareAudio(id: string, expiresInS?: number): Promise<ShareLink> {
  return request<ShareLink>(`/api/audios/${seg(id)}/share`, {
    method: 'POST',
    json: expiresInS === undefined ? {} : { expires_in_s: expiresInS },
  })
}

export interface Peaks {
  sample_rate: number
  duration_ms: number
  peaks: number[]
}

/** The audio's waveform; an audio without peaks (`peaks_url` null) has an empty one. */
export async function getPeaks(
  audio: Pick<Audio, 'peaks_url' | 'duration_ms'>,
  options: CallOptions = {},
): Promise<Peaks> {
  if (audio.peaks_url === null) return { sample_rate: 0, duration_ms: audio.duration_ms ?? 0, peaks: [] }
  return request<Peaks>(audio.peaks_url, options)
}

/** Where the finished bytes are; `download` asks for an attachment. */
export function audioFileUrl(audio: Audio, download = false): string {
  const base = audio.file_url ?? `/api/audios/${seg(audio.id)}/file`
  if (!download) return base
  return `${base}${base.includes('?') ? '&' : '?'}download=1`
}

/** Progressive MP3 of a running job: plays the first parts while the rest is made. */
export function audioStreamUrl(id: string): string {
  return `/api/audios/${seg(id)}/stream`
}

/** Makes a server path absolute, for links people copy elsewhere. */
export function absoluteUrl(path: string): string {
  return new URL(path, window.location.origin).toString()
}

export interface AudioEvent {
  status: AudioStatus
  progress: number
  error: { code: string; message: string } | null
}

/**
 * Follows `GET /api/audios/{id}/events` until a final state and returns a function that stops.
 * When the stream breaks for good (old proxy, server restart) it asks `GET /api/audios/{id}`
 * once, so a finished job is never missed.
 */
export function watchAudio(id: string, onEvent: (event: AudioEvent) => void): () => void {
  let closed = false
  const source = new EventSource(`/api/audios/${seg(id)}/events`)
  const stop = () => {
    closed = true
    source.close()
  }
  const deliver = (event: AudioEvent) => {
    if (closed) return
    onEvent(event)
    if (isFinal(event.status)) stop()
  }
  const onStatus = (message: Event) => {
    try {
      deliver(JSON.parse((message as MessageEvent<string>).data) as AudioEvent)
    } catch {
      // A malformed event is skipped; the next one or the final check carries the state.
    }
  }
  source.addEventListener('status', onStatus)
  // Unnamed events carry the same body on servers that leave out `event: status`.
  source.addEventListener('message', onStatus)
  source.addEventListener('error', () => {
    if (closed || source.readyState !== EventSource.CLOSED) return
    getAudio(id)
      .then((audio) => deliver({ status: audio.status, progress: audio.progress, error: audio.error }))
      .catch(() => undefined)
  })
  return stop
}

// ---- Transcripts ----------------------------------------------------------------------

/** The remote speech recognition providers a transcript can name; the server picks one when none is. */
export const ASR_PROVIDERS = ['openai', 'elevenlabs', 'tencent'] as const
/** Whisper on the server itself, offered when `GET /api/providers` lists it. */
export const LOCAL_ASR_PROVIDER = 'whisper'
export type AsrProvider = (typeof ASR_PROVIDERS)[number] | typeof LOCAL_ASR_PROVIDER

export type TranscriptStatus = 'queued' | 'running' | 'succeeded' | 'failed'
export type TranscriptFormat = 'json' | 'srt' | 'vtt' | 'txt'

/** A stretch of the recording, in seconds from its start. */
export interface TimeSpan {
  start: number
  end: number
}

export interface TranscriptSegment extends TimeSpan {
  text: string
  /** The same label for one voice within a transcript (`speaker_0`), where the provider gives it. */
  speaker?: string
}

export interface TranscriptWord extends TimeSpan {
  word: string
  speaker?: string
}

/** What was heard; times never go back. */
export interface Transcript {
  language: string | null
  duration: number
  text: string
  segments: TranscriptSegment[]
  /** Empty when the model gives no word times. */
  words: TranscriptWord[]
  model: string
}

/** A transcript in the library (docs/api.md, "Transcripts"). */
export interface Transcription {
  id: string
  title: string
  source: 'upload' | 'audio'
  audio_id: string | null
  status: TranscriptStatus
  progress: number
  provider: string
  model: string
  language: string | null
  speakers: boolean
  duration_ms: number | null
  size_bytes: number | null
  error: { code: string; message: string } | null
  /** The upload's `/recording`, or the library audio's file. */
  recording_url: string
  downloads: Record<TranscriptFormat, string> | null
  /** Present when one transcript is read and it succeeded. */
  transcript?: Transcript
  created_at: string
  updated_at: string
}

/** The choices a transcription may make; each left out takes the server's default. */
export interface TranscribeOptions {
  provider?: AsrProvider | ''
  language?: string
  speakers?: boolean
}

/** States after which a transcript never changes again by itself. */
export function isTranscriptFinal(status: TranscriptStatus): boolean {
  return status === 'succeeded' || status === 'failed'
}

/** Uploads a recording to transcribe (`multipart/form-data`); 202 with the queued transcript. */
export function uploadTranscription(file: File, options: TranscribeOptions = {}): Promise<Transcription> {
  const form = new FormData()
  form.append('file', file, file.name)
  if (options.provider !== undefined && options.provider !== '') form.append('provider', options.provider)
  const language = options.language?.trim() ?? ''
  if (language !== '') form.append('language', language)
  if (options.speakers === true) form.append('speakers', 'true')
  return request<Transcription>('/api/transcriptions', { method: 'POST', form })
}

/** Transcribes a finished audio of the library. */
export function transcribeAudio(audioId: string, options: TranscribeOptions = {}): Promise<Transcription> {
  const language = options.language?.trim() ?? ''
  return request<Transcription>('/api/transcriptions', {
    method: 'POST',
    json: {
      audio_id: audioId,
      ...(options.provider !== undefined && options.provider !== '' ? { provider: options.provider } : {}),
      ...(language !== '' ? { language } : {}),
      ...(options.speakers === true ? { speakers: true } : {}),
    },
  })
}

export function listTranscriptions(
  query: PageQuery & { q?: string; audio_id?: string } = {},
  options: CallOptions = {},
): Promise<Page<Transcription>> {
  return request<Page<Transcription>>(withQuery('/api/transcriptions', { ...query }), options)
}

export function getTranscription(id: string, options: CallOptions = {}): Promise<Transcription> {
  return request<Transcription>(`/api/transcriptions/${seg(id)}`, options)
}

export function deleteTranscription(id: string): Promise<void> {
  return request<void>(`/api/transcriptions/${seg(id)}`, { method: 'DELETE' })
}

/** The waveform of a library audio's transcript; an upload has none. */
export function transcriptPeaksUrl(transcription: Pick<Transcription, 'audio_id'>): string | null {
  return transcription.audio_id === null ? null : `/api/audios/${seg(transcription.audio_id)}/peaks`
}

/** The transcript as a file to download; the server names it after the title. */
export function transcriptDownloadUrl(transcription: Transcription, format: TranscriptFormat): string {
  return transcription.downloads?.[format] ?? `/api/transcriptions/${seg(transcription.id)}.${format}`
}

// ---- Podcasts -------------------------------------------------------------------------

export interface Podcast {
  id: string
  title: string
  description: string | null
  language: string | null
  author: string | null
  public: boolean
  /** Present when the server includes it; private shows get theirs from `rotateFeedToken`. */
  feed_url?: string | null
  cover_url?: string | null
  created_at: string
  updated_at?: string
}

export interface PodcastInput {
  title: string
  description?: string
  language?: string
  author?: string
  public?: boolean
}

export interface Speaker {
  name: string
  voice: string
}

/** A script line; `chapter` on a line starts a new chapter with that title. */
export interface ScriptLine {
  speaker: string
  text: string
  chapter?: string
}

export interface Episode {
  id: string
  title: string
  audio: Audio
  lines: ScriptLine[]
  speakers?: Speaker[]
  created_at?: string
}

export interface ScriptRequest {
  source: { topic: string } | { text: string }
  speakers: Speaker[]
  minutes?: number
  language?: string
  style?: string
}

export interface Chapter {
  startTime: number
  title: string
}

export function listPodcasts(query: PageQuery = {}, options: CallOptions = {}): Promise<Page<Podcast>> {
  return request<Page<Podcast>>(withQuery('/api/podcasts', { ...query }), options)
}

export function createPodcast(input: PodcastInput): Promise<Podcast> {
  return request<Podcast>('/api/podcasts', { method: 'POST', json: input })
}

export function getPodcast(id: string, options: CallOptions = {}): Promise<Podcast> {
  return request<Podcast>(`/api/podcasts/${seg(id)}`, options)
}

export function updatePodcast(id: string, input: Partial<PodcastInput>): Promise<Podcast> {
  return request<Podcast>(`/api/podcasts/${seg(id)}`, { method: 'PATCH', json: input })
}

export function deletePodcast(id: string): Promise<void> {
  return request<void>(`/api/podcasts/${seg(id)}`, { method: 'DELETE' })
}

export function rotateFeedToken(id: string): Promise<{ feed_url: string }> {
  return request<{ feed_url: string }>(`/api/podcasts/${seg(id)}/feed-token`, { method: 'POST' })
}

/** The public feed address; private shows need the tokened URL from `rotateFeedToken`. */
export function publicFeedUrl(podcast: Podcast): string {
  return podcast.feed_url ?? `/feeds/${seg(podcast.id)}.xml`
}

/**
 * Asks the configured LLM for a dialogue. The answer is `{lines}`, or chapters with lines
 * (the podcast issue's wording); both come back as flat lines with chapter marks.
 */
export async function generateScript(podcastId: string, input: ScriptRequest): Promise<ScriptLine[]> {
  const body = await request<
    { lines: ScriptLine[] } | { chapters: { title: string; lines: ScriptLine[] }[] }
  >(`/api/podcasts/${seg(podcastId)}/scripts`, { method: 'POST', json: input })
  if ('lines' in body) return body.lines
  return body.chapters.flatMap((chapter) =>
    chapter.lines.map((line, index) => (index === 0 ? { ...line, chapter: chapter.title } : line)),
  )
}

export interface EpisodeInput {
  title: string
  lines: ScriptLine[]
  speakers: Speaker[]
  pause_ms?: number
}

export function createEpisode(podcastId: string, input: EpisodeInput): Promise<Episode> {
  return request<Episode>(`/api/podcasts/${seg(podcastId)}/episodes`, {
    method: 'POST',
    json: input,
  })
}

export function listEpisodes(
  podcastId: string,
  query: PageQuery = {},
  options: CallOptions = {},
): Promise<Page<Episode>> {
  return request<Page<Episode>>(withQuery(`/api/podcasts/${seg(podcastId)}/episodes`, { ...query }), options)
}

export function getEpisode(podcastId: string, episodeId: string, options: CallOptions = {}): Promise<Episode> {
  return request<Episode>(`/api/podcasts/${seg(podcastId)}/episodes/${seg(episodeId)}`, options)
}

export function deleteEpisode(podcastId: string, episodeId: string): Promise<void> {
  return request<void>(`/api/podcasts/${seg(podcastId)}/episodes/${seg(episodeId)}`, {
    method: 'DELETE',
  })
}

export type SubtitleFormat = 'vtt' | 'srt'

export function subtitlesUrl(podcastId: string, episodeId: string, format: SubtitleFormat): string {
  return `/api/podcasts/${seg(podcastId)}/episodes/${seg(episodeId)}/subtitles.${format}`
}

/** Podcasting 2.0 chapters: `{version, chapters: [{startTime, title}]}`. */
export async function getChapters(
  podcastId: string,
  episodeId: string,
  options: CallOptions = {},
): Promise<Chapter[]> {
  const body = await request<{ chapters?: Chapter[] }>(
    `/api/podcasts/${seg(podcastId)}/episodes/${seg(episodeId)}/chapters.json`,
    options,
  )
  return body.chapters ?? []
}

// ---- Usage and administration ---------------------------------------------------------

export interface UsageRow {
  /** `YYYY-MM-DD` */
  day: string
  /** e.g. `tts:openai:tts-1` */
  service: string
  /** `gateway` for use through the OpenAI-compatible API (`/v1`); absent means `app`. */
  source?: 'app' | 'gateway'
  units: number
  cost_micros: number
}

/** `from` and `to` are `YYYY-MM-DD` days, both included. */
export function getUsage(from: string, to: string, options: CallOptions = {}): Promise<UsageRow[]> {
  return request<UsageRow[]>(withQuery('/api/usage', { from, to }), options)
}

/** A user as admins see them. */
export interface UserSummary {
  id: string
  email: string
  display_name: string | null
  role: Role
  disabled: boolean
  /** Null: the configured default applies. */
  quota_chars_per_month: number | null
  created_at: string
  updated_at: string
}

export interface UserPatch {
  role?: Role
  disabled?: boolean
  /** Null resets to the configured default. */
  quota_chars_per_month?: number | null
}

export function listUsers(
  query: PageQuery & { q?: string } = {},
  options: CallOptions = {},
): Promise<Page<UserSummary>> {
  return request<Page<UserSummary>>(withQuery('/api/admin/users', { ...query }), options)
}

export function updateUser(id: string, patch: UserPatch): Promise<UserSummary> {
  return request<UserSummary>(`/api/admin/users/${seg(id)}`, { method: 'PATCH', json: patch })
}

export interface Invite {
  code: string
  status?: 'active' | 'used' | 'expired'
  created_at: string
  expires_at: string | null
  used_at?: string | null
  used_by?: string | null
}

export async function listInvites(options: CallOptions = {}): Promise<Invite[]> {
  return itemsOf(await request<Invite[] | Page<Invite>>('/api/admin/invites', options))
}

export function createInvite(expiresInS?: number): Promise<Invite> {
  return request<Invite>('/api/admin/invites', {
    method: 'POST',
    json: expiresInS === undefined ? {} : { expires_in_s: expiresInS },
  })
}

export function deleteInvite(code: string): Promise<void> {
  return request<void>(`/api/admin/invites/${seg(code)}`, { method: 'DELETE' })
}

export interface SystemInfo {
  version: string
  uptime_s: number
  db_bytes: number
  jobs: { queued: number; running: number; failed_24h: number }
  storage: { kind: string; objects?: number | null }
}

export function getSystem(options: CallOptions = {}): Promise<SystemInfo> {
  return request<SystemInfo>('/api/admin/system', options)
}

export interface Backup {
  name: string
  size_bytes: number
  sha256: string | null
  created_at: string
  /** Present on servers that list running and failed backups too. */
  status?: string
  error?: string | null
}

export async function listBackups(options: CallOptions = {}): Promise<Backup[]> {
  return itemsOf(await request<Backup[] | Page<Backup>>('/api/admin/backups', options))
}

export function startBackup(): Promise<unknown> {
  return request<unknown>('/api/admin/backups', { method: 'POST' })
}

// ---- Monitoring (admin) ----------------------------------------------------------------

/** What the minute series covers: the last hour or the last day. */
export type SeriesRange = '1h' | '24h'

/** Counts per provider kind. */
export interface KindCounts {
  tts: number
  llm: number
  asr: number
}

/** A latency percentile per provider kind, in seconds; null for a kind without calls. */
export interface KindLatency {
  tts: number | null
  llm: number | null
  asr: number | null
}

export type ProviderKind = keyof KindCounts

/** The sampler's gauges in a minute. */
export interface Sampled {
  jobs_queued: number
  jobs_running: number
  /** Jobs that failed in the last 24 hours. */
  jobs_failed: number
  /** Free space on the data directory's disk, in per mille. */
  disk_free_permille: number
  db_bytes: number
  wal_bytes: number
  /** Unix seconds of the last successful backup; 0 when none is known. */
  last_backup_unix: number
}

/** One minute of the series. */
export interface SeriesMinute {
  /** Unix seconds of the minute's start. */
  start: number
  requests: number
  errors_5xx: number
  /** Request latency percentiles in seconds; null without requests. */
  p50_s: number | null
  p99_s: number | null
  provider_calls: KindCounts
  provider_errors: KindCounts
  provider_p50_s: KindLatency
  provider_p99_s: KindLatency
  cost_usd: number
  db_errors: number
  storage_errors: number
  backup_failures: number
  /** Null when the sampler did not run in that minute. */
  sampled: Sampled | null
}

/** The whole range summed. */
export interface SeriesWindow {
  minutes: number
  requests: number
  errors_5xx: number
  p50_s: number | null
  p99_s: number | null
  provider_calls: KindCounts
  provider_errors: KindCounts
  provider_p50_s: KindLatency
  provider_p99_s: KindLatency
  cost_usd: number
  db_errors: number
  storage_errors: number
  backup_failures: number
  /** The newest sample in the range. */
  latest: Sampled | null
}

/** `GET /api/admin/metrics/series`: minutes oldest first, the last one still running. */
export interface MetricsSeries {
  range: SeriesRange
  minutes: SeriesMinute[]
  window: SeriesWindow
  /** Everyone's provider cost since midnight UTC. */
  cost_today_usd: number
  /** Null when no budget is configured. */
  daily_budget_usd: number | null
}

export function getMetricsSeries(range: SeriesRange, options: CallOptions = {}): Promise<MetricsSeries> {
  return request<MetricsSeries>(withQuery('/api/admin/metrics/series', { range }), options)
}

export type Severity = 'critical' | 'warning' | 'info'

export interface Alert {
  id: string
  /** The rule's name, e.g. `error_rate`. */
  rule: string
  severity: Severity
  state: 'firing' | 'resolved'
  summary: string
  value: number
  threshold: number
  fired_at: string
  resolved_at: string | null
  resolved_value: number | null
  notified_at: string | null
  /** Notices sent: firing, repeats and resolve. */
  notifications: number
}

/** The alerts firing now, and a page of every alert, newest first. */
export interface AlertsPage extends Page<Alert> {
  active: Alert[]
}

export function listAlerts(query: PageQuery = {}, options: CallOptions = {}): Promise<AlertsPage> {
  return request<AlertsPage>(withQuery('/api/admin/alerts', { ...query }), options)
}

export type NotifierKind = 'slack' | 'email' | 'pagerduty' | 'webhook'

export interface Notifier {
  name: string
  kind: NotifierKind
  /** Where it delivers, without credentials. */
  target: string
  sent: number
  failed: number
  last_error: string | null
  last_error_at: string | null
}

export async function listNotifiers(options: CallOptions = {}): Promise<Notifier[]> {
  return (await request<{ notifiers: Notifier[] }>('/api/admin/notifiers', options)).notifiers
}

export interface NotifierTestResult {
  name: string
  kind: NotifierKind
  delivered: boolean
  /** Null when delivered. */
  error: string | null
}

/** Each delivery's outcome, or `pending` (202) when they outlast the request. */
export interface NotifierTest {
  results: NotifierTestResult[] | null
  pending?: boolean
}

/** Sends a test notification through `notifier`, or through every notifier without one. */
export function testNotifiers(notifier?: string): Promise<NotifierTest> {
  return request<NotifierTest>('/api/admin/alerts/test', {
    method: 'POST',
    json: notifier === undefined ? {} : { notifier },
  })
}

// ---- Models (admin) -------------------------------------------------------------------

export type ModelKind = 'runtime' | 'kokoro' | 'piper' | 'whisper'

/** A model download the server runs in the background. */
export interface ModelPull {
  state: 'running' | 'failed' | 'done'
  done_bytes: number
  total_bytes: number
  error: string | null
}

export interface Model {
  /** `runtime`, `kokoro`, `piper:<voice>` or `whisper:<variant>` (or an imported model's name). */
  name: string
  kind: ModelKind
  /** BCP 47 tags; `mul` for a multilingual Whisper model. */
  languages: string[]
  size_bytes: number
  /** SPDX id; empty for an imported Whisper model, whose licence is its author's. */
  license: string
  commercial_use: boolean
  quality: string | null
  installed: boolean
  /** `false` for a Whisper model of the admin's own (`aimake models import FILE`): not pinned by a hash. */
  verified: boolean
  /** The latest download of this model, if any. */
  pull: ModelPull | null
}

export interface ModelList {
  /** Where the server keeps its models. */
  dir: string
  disk_used_bytes: number
  models: Model[]
}

export function listModels(options: CallOptions = {}): Promise<ModelList> {
  return request<ModelList>('/api/admin/models', options)
}

/** Starts downloading `name` in the background; 409 `conflict` while it already runs. */
export function pullModel(name: string): Promise<Model> {
  return request<Model>(`/api/admin/models/${seg(name)}/pull`, { method: 'POST' })
}

/** Deletes an installed model's files; 409 `conflict` while it downloads. */
export function removeModel(name: string): Promise<void> {
  return request<void>(`/api/admin/models/${seg(name)}`, { method: 'DELETE' })
}

/** One voice's round trip: a voice engine spoke the sentence, Whisper heard it. */
export interface SelftestVoice {
  /** The voice's id, e.g. `kokoro:af_heart`. */
  voice: string
  /** What Whisper heard; null when a step failed. */
  heard: string | null
  /** Words substituted, dropped or added over the sentence's words: 0 is word for word; null when a step failed. */
  word_error_rate: number | null
  /** Length of the spoken sentence; null when a step failed. */
  audio_ms: number | null
  /** Time to speak and hear it. */
  elapsed_ms: number
  error: string | null
}

export interface SelftestReport {
  sentence: string
  /** The Whisper model that listened. */
  model: string
  /** One per voice engine that runs on the server (espeak-ng, Kokoro, Piper). */
  voices: SelftestVoice[]
}

/**
 * Has each voice engine on the server speak a known sentence and Whisper hear it, which takes
 * seconds to a minute; 503 `provider_unavailable` when no Whisper model is installed.
 */
export function runSelftest(): Promise<SelftestReport> {
  return request<SelftestReport>('/api/admin/selftest', { method: 'POST' })
}

// ---- Client errors ------------------------------------------------------------------

/** One of the page's uncaught errors, as `POST /api/client-errors` takes it. */
export interface ClientErrorReport {
  message: string
  stack?: string
  /** The page's path, without query or fragment. */
  path: string
  user_agent?: string
  /** The web app's build. */
  release?: string
}

/**
 * Tells the server about an uncaught error. `keepalive` lets it finish while the page
 * unloads; a report that fails is dropped (reporting must never raise errors of its own).
 */
export async function reportClientError(report: ClientErrorReport): Promise<void> {
  try {
    await request<void>('/api/client-errors', { method: 'POST', json: report, keepalive: true })
  } catch {
    // Nothing to do: the server is unreachable, over its budget, or the report was refused.
  }
}
