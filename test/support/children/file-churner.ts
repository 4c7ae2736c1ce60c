// Child process that keeps rewriting the start of a file (a counter) as fast
// as it can until killed: a file "changing under" a push. Prints "ready"
// once the first write is done.
import { openSync, writeSync } from 'node:fs';

const fd = openSync(process.argv[2], 'r+');
let n = 0;
writeSync(fd, Buffer.from(String(n++).padStart(16, '0')), 0, 16, 0);
process.stdout.write('ready\n');
for (;;) writeSync(fd, Buffer.from(String(n++).padStart(16, '0')), 0, 16, 0);
