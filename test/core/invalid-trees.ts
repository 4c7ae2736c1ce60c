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
    // Near misses of the canonical file line (the decoders read it in place from its template).
    good.replace('"size":1', '"size":01'),
    good.replace('"size":1', '"size":1.0'),
    good.replace('"size":1', '"size":1e0'),
    good.replace('"size":1', '"size":+1'),
    good.replace('"size":1', '"size":"1"'),
    good.replace('"size":1,', '"size":99999999999999999,'),
    good.replace('"size":1,', '"size":,'),
    good.replace(digest, digest.toUpperCase()),
    good.replace(digest, `sha256:${digest.slice(7).toUpperCase()}`),
    good.replace(digest, digest.slice(0, -1)),
    good.replace(digest, `${digest}0`),
    good.replace(digest, digest.replace('sha256:', 'sha512:')),
    good.replace('"path":"a"', '"path":"\\u0061"'),
    good.replace('"path":"a"', '"path":""'),
    good.replace('"path":"a"', '"path":"a/"'),
    good.replace('"path":"a"', '"path":"/a"'),
    good.replace('"path":"a"', '"path":"C:a"'),
    good.replace('"path":"a"', '"path":"a\tb"'),
    good.replace('"kind":"file"', '"kind":"File"'),
    good.replace('"kind":"file"', '"kind":"exec" '),
    good.replace('"}', '" }'),
    good.replace('"}', '"}}'),
    good.replace('"}', '","extra":1}'),
    good.replace(`"digest":"${digest}"}`, `"digest":"${digest}","digest":"${digest}"}`),
  ];
}
