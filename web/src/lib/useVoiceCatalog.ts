// The voices and providers a voice picker offers, kept current while the server downloads
// a neural model in the background, so the better voices appear once they are ready.

import { getProviders, getVoices } from '../api.ts'
import type { Provider, Voice } from '../api.ts'
import { useLoad } from './useLoad.ts'
import type { Loaded } from './useLoad.ts'
import { usePoll } from './usePoll.ts'
import { neuralDownload } from './voices.ts'

/** How often the providers are asked again while a neural model downloads. */
export const DOWNLOAD_POLL_MS = 3000

export interface Catalog {
  voices: Voice[]
  providers: Provider[]
}

export function useVoiceCatalog(): { state: Loaded<Catalog>; voices: Voice[]; providers: Provider[] } {
  const catalog = useLoad(async (signal): Promise<Catalog> => {
    const [voices, providers] = await Promise.all([getVoices({}, { signal }), getProviders({ signal })])
    return { voices, providers }
  }, 'catalog')
  const providers = catalog.data?.providers ?? []

  usePoll(neuralDownload(providers) !== null, DOWNLOAD_POLL_MS, async (signal) => {
    const next = await getProviders({ signal })
    // Once the download is done, the new voices (and the server's new defaults) come too.
    const voices = neuralDownload(next) === null ? await getVoices({}, { signal }) : null
    catalog.set((data) => ({ voices: voices ?? data.voices, providers: next }))
  })

  return { state: catalog.state, voices: catalog.data?.voices ?? [], providers }
}
