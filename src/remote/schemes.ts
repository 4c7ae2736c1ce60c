// Loads the remote backends that register URL schemes. Imported lazily by
// openRemote so that a file:// sync never loads the cloud SDKs.
// Each backend module calls registerRemoteScheme() when imported; the cloud
// SDKs weigh tens of MB of memory each, so s3:// and gs:// load only their own.
import { registerRemoteScheme } from './remote.ts';

registerRemoteScheme('s3', async (url) => (await import('./s3-remote.ts')).openS3Remote(url));
registerRemoteScheme('gs', async (url) => (await import('./gcs-remote.ts')).openGcsRemote(url));

import './http-remote.ts';
