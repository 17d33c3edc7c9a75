// Tells why the neural voices are not there yet: still downloading on first run (everyone),
// or off until an admin installs what they need (admins, with the way to the Models page).

import type { Provider } from '../api.ts'
import { useI18n } from '../i18n.ts'
import { downloadPercent, isNeural, neuralDownload } from '../lib/voices.ts'
import { useSession } from '../session.ts'
import { Link } from './Link.tsx'

export function NeuralVoicesHint({ providers }: { providers: readonly Provider[] }) {
  const { t } = useI18n()
  const admin = useSession().user?.role === 'admin'

  const downloading = neuralDownload(providers)?.progress
  if (downloading != null) {
    const percent = downloadPercent(downloading)
    return (
      <p className="banner banner-info">
        {percent === null ? t('studio.neuralDownloadStarting') : t('studio.neuralDownloading', { percent })}
      </p>
    )
  }

  const neural = providers.filter((p) => isNeural(p.id))
  const off = neural[0]
  if (!admin || off === undefined || neural.some((p) => p.available)) return null
  return (
    <div className="banner banner-info stack-sm">
      <p>{t('studio.neuralOff', { detail: off.detail })}</p>
      <p>
        <Link to="/admin/models">{t('studio.manageModels')}</Link>
      </p>
    </div>
  )
}
