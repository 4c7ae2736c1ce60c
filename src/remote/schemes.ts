// Loads the remote backends that register URL schemes. Imported lazily by
// openRemote so that a file:// sync never loads the cloud SDKs.
// Each backend module calls registerRemoteScheme() when imported.
import './s3-remote.ts';
import './http-remote.ts';
import './gcs-remote.ts';
