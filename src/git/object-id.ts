// A git object id as hoard accepts it anywhere: lowercase hex, SHA-1 (40)
// or SHA-256 (64). One pattern, so a ref file, a want line, a snapshot's
// commit and a Content-Location are held to the same form.

export const OBJECT_ID = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

export function isObjectId(s: string): boolean {
  return OBJECT_ID.test(s);
}
