/** An idle program for measuring the tsx loader's own RSS (scenario 5). */
setInterval(() => undefined, 1 << 30);
process.stdout.write("ready\n");
