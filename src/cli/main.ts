// The `hoard` command line: the program (program.ts) run on this process's
// arguments, with only the named command's module loaded. Each command maps
// errors to exit codes through output.ts.

import { buildProgram } from './program.ts';

await (await buildProgram(process.argv)).parseAsync(process.argv);
