// The flag names the git proxy's settings get (see git-settings.ts): what
// resolveGitSettings accepts from a commander-parsed `hoard serve`.

export interface GitFlags {
  gitMaxStaleness?: string;
  gitFetchTimeout?: string;
  gitUpstream?: string[];
  gitAllowPushThrough?: boolean;
  gitAllowAnyHost?: boolean;
  gitAllowHost?: string[];
  gitDenyHost?: string[];
  config?: string;
}
