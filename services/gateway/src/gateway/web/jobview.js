// How a job reads to a person: its status in words, its timings. Shared by cards and details.

export const UNFINISHED = new Set(["queued", "running"]);

export function stateText(job) {
  switch (job.status) {
    case "queued":
      return job.queue_position == null ? "Waiting for a worker" : `${job.queue_position} ahead in the queue`;
    case "running":
      return job.progress == null ? "Generating" : `Generating, ${Math.round(job.progress * 100)}%`;
    case "succeeded":
      return job.finished_at ? `Done in ${seconds(job.created_at, job.finished_at)}` : "Done";
    case "failed":
      return `Failed after ${job.attempts} attempt${job.attempts === 1 ? "" : "s"}`;
    case "canceled":
      return job.cancel_reason === "deadline" ? "Canceled: its deadline passed" : "Canceled";
    default:
      return job.status;
  }
}

export function seconds(from, to) {
  const s = (new Date(to) - new Date(from)) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

// What a job's files are, as one comparable string: their URLs and whether they expired.
export function mediaKey(media) {
  return (media || []).map((m) => `${m.url}:${m.expired}`).join(" ");
}

export function canCancel(job) {
  return UNFINISHED.has(job.status);
}

export function canRetry(job) {
  return job.status === "failed" || job.status === "canceled";
}
