// Opening the remote a command names and closing it whatever happens, so
// every command releases its connections (keep-alive agents, SDK clients).

import { openRemote, type Remote } from '../remote/remote.ts';

export async function withRemote<T>(url: string, fn: (remote: Remote) => Promise<T>): Promise<T> {
  const remote = await openRemote(url);
  try {
    return await fn(remote);
  } finally {
    await remote.close();
  }
}
