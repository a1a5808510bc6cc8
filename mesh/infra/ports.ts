import { createServer } from "node:net";

/** Asks the kernel for a free TCP port on 127.0.0.1 (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("could not read the address of a port-0 listener"));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

// A port freePort() returned can be taken by another process before a child binds it; a few fresh
// picks make that race vanishingly rare on a busy test machine.
const PORT_RACE_ATTEMPTS = 3;

/**
 * Starts a child on ports chosen by `pick` and, when `start` fails because a port was taken
 * between the pick and the bind ("address already in use"), picks again, up to 3 times. With
 * `fixed` (the caller chose the ports) it starts once: a taken fixed port is the caller's error.
 */
export async function startOnFreePorts<P, T>(fixed: boolean, pick: () => Promise<P>, start: (ports: P) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await pick());
    } catch (e) {
      if (fixed || attempt >= PORT_RACE_ATTEMPTS || !/address already in use/i.test((e as Error).message)) throw e;
    }
  }
}
