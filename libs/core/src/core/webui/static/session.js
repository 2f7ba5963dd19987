// Signing in (OAuth2 password flow at /auth/token) and calling the API with the bearer token.
// The token lives in localStorage under the page's key; a 401 on a call made with it means it
// expired or was revoked: the session ends and says so, and the page shows the sign-in form.

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.detail;
    super(typeof detail === "string" ? detail : `The server answered ${status}`);
    this.status = status;
    this.detail = detail;
  }

  // A 422's field errors: [{loc: [...], msg, ...}]; empty for any other error.
  get fieldErrors() {
    return Array.isArray(this.detail) ? this.detail : [];
  }
}

export class SessionExpired extends Error {}

export const EXPIRED_MESSAGE = "Your session has expired. Sign in again to go on.";
export const UNREACHABLE_MESSAGE = "The server cannot be reached; try again.";

export class Session extends EventTarget {
  constructor(storageKey) {
    super();
    this.key = storageKey;
  }

  get state() {
    try {
      return JSON.parse(localStorage.getItem(this.key) || "null");
    } catch {
      return null;
    }
  }

  get signedIn() {
    return this.state !== null;
  }

  get username() {
    return this.state?.username ?? null;
  }

  async signIn(username, password) {
    const form = new URLSearchParams({ username, password });
    const response = await fetch("/auth/token", { method: "POST", body: form });
    const body = await readJson(response);
    if (!response.ok) throw new ApiError(response.status, body);
    localStorage.setItem(this.key, JSON.stringify({ token: body.access_token, username }));
    this.dispatchEvent(new CustomEvent("change", { detail: { signedIn: true } }));
  }

  signOut(message = "") {
    localStorage.removeItem(this.key);
    this.dispatchEvent(new CustomEvent("change", { detail: { signedIn: false, message } }));
  }

  // fetch() with the bearer token (when signed in). Raises SessionExpired on a 401 to a
  // request that carried a token, after ending the session.
  async fetch(path, options = {}) {
    const state = this.state;
    const headers = new Headers(options.headers || {});
    if (state) headers.set("Authorization", `Bearer ${state.token}`);
    const response = await fetch(path, { ...options, headers });
    if (response.status === 401 && state) {
      this.signOut(EXPIRED_MESSAGE);
      throw new SessionExpired(EXPIRED_MESSAGE);
    }
    return response;
  }

  // A JSON call: the parsed body, or ApiError with the server's detail.
  async call(method, path, json) {
    const options = { method };
    if (json !== undefined) {
      options.body = JSON.stringify(json);
      options.headers = { "Content-Type": "application/json" };
    }
    const response = await this.fetch(path, options);
    const body = await readJson(response);
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }
}

async function readJson(response) {
  if (response.status === 204) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

// Wire a sign-in form (fields named username and password, a .form-error element).
export function bindSignInForm(form, session) {
  const error = form.querySelector(".form-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const data = new FormData(form);
    error.textContent = "";
    button.disabled = true;
    try {
      await session.signIn(String(data.get("username")), String(data.get("password")));
      form.reset();
    } catch (exc) {
      if (!(exc instanceof ApiError)) error.textContent = UNREACHABLE_MESSAGE;
      else if (exc.status === 422) error.textContent = "Enter your username and password.";
      else error.textContent = exc.message;
      form.querySelector("input[name=password]").focus();
    } finally {
      button.disabled = false;
    }
  });
}
