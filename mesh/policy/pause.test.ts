import { Pause } from "./pause.js";

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

test("a sleep ends after its time", async () => {
  const p = new Pause();
  let done = false;
  void p.sleep(1_000).then(() => (done = true));
  await jest.advanceTimersByTimeAsync(999);
  expect(done).toBe(false);
  await jest.advanceTimersByTimeAsync(1);
  expect(done).toBe(true);
});

test("wake() ends the sleep in progress at once and not a later one", async () => {
  const p = new Pause();
  let first = false;
  void p.sleep(60_000).then(() => (first = true));
  p.wake();
  await Promise.resolve();
  expect(first).toBe(true);
  expect(jest.getTimerCount()).toBe(0);
  p.wake(); // nothing sleeping: no effect on the next sleep
  let second = false;
  void p.sleep(500).then(() => (second = true));
  await jest.advanceTimersByTimeAsync(499);
  expect(second).toBe(false);
  await jest.advanceTimersByTimeAsync(1);
  expect(second).toBe(true);
});
