// Malformed and non-canonical variants of one valid tree listing, shared by
// the tests of the whole-buffer decoder (tree.test.ts) and the streaming one
// (tree-stream.test.ts): both must reject every one of them.

/**
 * Variants of `good` (an encoded tree of two `file` entries, `a` and `b`,
 * each of size 1 and digest `digest`) that no decoder may accept.
 */
export function invalidTreeTexts(good: string, digest: string): string[] {
  const swapped = good.split('\n');
  [swapped[1], swapped[2]] = [swapped[2], swapped[1]];
  return [
    swapped.join('\n'),
    good.replace('"size":1', '"size":-1'),
    good.replace('"kind":"file"', '"kind":"socket"'),
    good.replace(digest, 'sha256:nope'),
    good.replace('"path":"a"', '"path":"../a"'),
    good.replace('"path":"a","kind"', '"kind"'),
    good.replace('{"path":"a"', '{ "path":"a"'),
    good.trimEnd(),
    'garbage',
  ];
}
