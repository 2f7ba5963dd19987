// Following unfinished jobs live over GET /jobs/{id}/events. A browser opens at most six
// HTTP/1.1 connections to one host, and every open stream holds one: so at most MAX_STREAMS
// are followed at once (the rest wait their turn, newest first), leaving connections for the
// API calls and the images.

import { followEvents } from "/ui/core/events.js";

const MAX_STREAMS = 3;

export class LiveJobs {
  constructor(session, onJob) {
    this.session = session;
    this.onJob = onJob; // called with each status (a JobPublic) or logs update ({id, logs, progress})
    this.streams = new Map(); // job id -> AbortController
    this.waiting = []; // job ids, next first
  }

  follow(jobId, { first = false } = {}) {
    if (this.streams.has(jobId) || this.waiting.includes(jobId)) return;
    if (first) this.waiting.unshift(jobId);
    else this.waiting.push(jobId);
    this.#startWaiting();
  }

  stopAll() {
    for (const controller of this.streams.values()) controller.abort();
    this.streams.clear();
    this.waiting = [];
  }

  #startWaiting() {
    while (this.streams.size < MAX_STREAMS && this.waiting.length) {
      const jobId = this.waiting.shift();
      const controller = new AbortController();
      this.streams.set(jobId, controller);
      followEvents(this.session, `/jobs/${jobId}/events`, {
        signal: controller.signal,
        onEvent: (event) => {
          if (event.event === "status") this.onJob(JSON.parse(event.data));
          else if (event.event === "logs") this.onJob({ id: jobId, ...JSON.parse(event.data) });
        },
      })
        .catch(() => {}) // a job deleted meanwhile (404): nothing more to show
        .finally(() => {
          if (this.streams.get(jobId) === controller) this.streams.delete(jobId);
          this.#startWaiting();
        });
    }
  }
}
