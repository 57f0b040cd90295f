// The HTTP API client of the UI: the session (bearer token in sessionStorage, so it lives
// as long as the tab), JSON calls that turn the API's error body into ApiError, the
// password grant of the public web client, and the binary upload with progress events.

const KEY = "otad.session";
export const WEB_CLIENT_ID = "otad-manager";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message || body.error_description)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.trace = this.body.trace || this.body.error || "";
  }
}

export const session = {
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY) || "null");
    } catch {
      return null;
    }
  },
  set(s) {
    sessionStorage.setItem(KEY, JSON.stringify(s));
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

// Called when the server answers 401 to a signed-in call (token expired or revoked).
let onExpired = () => {};
export function setExpiredHandler(fn) {
  onExpired = fn;
}

// The partner whose data is shown: the user's own, or the one an admin picked.
export function partnerId() {
  const s = session.get();
  return s ? s.viewPartner || s.partnerId : "";
}

// `/v1/ota/partners/{partnerId}` followed by the encoded segments.
export function pp(...segments) {
  return ["/v1/ota/partners", partnerId(), ...segments].map((x, i) => (i === 0 ? x : encodeURIComponent(String(x)))).join("/");
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

async function parse(resp) {
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { message: text };
  }
}

export async function call(method, path, body) {
  const s = session.get();
  const headers = { Accept: "application/json" };
  if (s) headers.Authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, { message: `The server cannot be reached (${e.message}).`, trace: "network" });
  }
  const data = await parse(resp);
  if (resp.status === 401 && s) {
    onExpired();
    throw new ApiError(401, data);
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const put = (path, body) => call("PUT", path, body);
export const del = (path) => call("DELETE", path);

// HEAD of a binary: its size (Content-Length) and BLAKE3 (ETag).
export async function binaryInfo(url) {
  const s = session.get();
  const path = new URL(url, location.href).pathname;
  const resp = await fetch(path, { method: "HEAD", headers: { Authorization: `Bearer ${s.token}` } });
  if (!resp.ok) return null;
  const etag = (resp.headers.get("ETag") || "").replaceAll('"', "");
  return { size: Number(resp.headers.get("Content-Length")), blake3: etag };
}

// The password grant as the public web client; then who the token belongs to.
export async function signIn(username, password) {
  const form = new URLSearchParams({ grant_type: "password", username, password, client_id: WEB_CLIENT_ID });
  let resp;
  try {
    resp = await fetch("/oauth/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: form.toString(),
    });
  } catch (e) {
    throw new ApiError(0, { message: `The server cannot be reached (${e.message}).` });
  }
  const data = await parse(resp);
  if (!resp.ok) throw new ApiError(resp.status, data);
  session.set({ token: data.access_token, expires: Date.now() + data.expires_in * 1000 });
  try {
    const me = await get("/v1/me");
    session.set({ token: data.access_token, expires: Date.now() + data.expires_in * 1000, ...me });
    return me;
  } catch (e) {
    session.clear();
    throw e;
  }
}

export async function signOut() {
  const s = session.get();
  session.clear();
  if (!s) return;
  const form = new URLSearchParams({ token: s.token, client_id: WEB_CLIENT_ID });
  try {
    await fetch("/oauth/revoke", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: form.toString(),
    });
  } catch {
    // Signed out locally either way; the token expires on its own.
  }
}

// Uploads a file to the partner's staging area with progress events. Returns
// { promise, abort }; the promise resolves to the SHA-256 the server computed.
export function uploadBinary(file, onProgress) {
  const s = session.get();
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    // The filename is kept with the binary (DDI agents are given it; SWUpdate wants .swu).
    xhr.open("POST", `${pp("binaries")}?filename=${encodeURIComponent(file.name || "")}`);
    xhr.setRequestHeader("Authorization", `Bearer ${s.token}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = { message: xhr.responseText };
      }
      if (xhr.status === 200 && data && data.value) {
        onProgress(file.size, file.size);
        resolve(data.value);
      } else {
        if (xhr.status === 401) onExpired();
        reject(new ApiError(xhr.status, data));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { message: "The upload failed: the connection broke." })));
    xhr.addEventListener("abort", () => reject(new ApiError(0, { message: "The upload was cancelled.", trace: "aborted" })));
    xhr.send(file);
  });
  return { promise, abort: () => xhr.abort() };
}
