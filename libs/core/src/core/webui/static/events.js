// Server-Sent Events over fetch(): EventSource cannot send the bearer token. Like EventSource,
// a dropped connection is resumed with Last-Event-ID; unlike it, a stream the server ends on
// purpose (after the job's last event) stays ended, as does one answered 204.

import { SessionExpired } from "./session.js";

const RETRY_MS = [500, 1000, 2000, 5000];

// Follow `path`, calling onEvent({event, id, data}) for each event; resolves when the server
// ends the stream (or `signal` aborts it). `lastEventId` starts after that event ("0": the
// whole history first).
export async function followEvents(session, path, { onEvent, signal, lastEventId = null }) {
  let last = lastEventId;
  let failures = 0;
  const backoff = () => pause(RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)], signal);
  while (!signal?.aborted) {
    const headers = { Accept: "text/event-stream" };
    if (last !== null) headers["Last-Event-ID"] = last;
    let response;
    try {
      response = await session.fetch(path, { headers, signal });
    } catch (error) {
      if (error instanceof SessionExpired || signal?.aborted) return;
      await backoff();
      continue;
    }
    if (response.status === 204) return;
    if (response.status >= 500) {
      // The service is unwell (a database outage is a 503): try again, like a dropped stream.
      await backoff();
      continue;
    }
    if (!response.ok) throw new Error(`event stream answered ${response.status}`);
    try {
      for await (const event of parse(response.body)) {
        failures = 0;
        if (event.id !== null) last = event.id;
        onEvent(event);
      }
      return; // the server ended the stream: the job finished (or the gateway is stopping)
    } catch (error) {
      if (signal?.aborted) return;
      await backoff();
    }
  }
}

// The events of a text/event-stream body (the WHATWG parsing rules, minus `retry`).
async function* parse(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { event: "message", id: null, data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) yield { event: event.event, id: event.id, data: event.data.join("\n") };
        event = { event: "message", id: null, data: [] };
        continue;
      }
      if (line.startsWith(":")) continue; // a keep-alive comment
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") event.data.push(value);
      else if (field === "event") event.event = value;
      else if (field === "id") event.id = value;
    }
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
