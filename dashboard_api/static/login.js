// The engineers' login: POST /api/v1/auth/login, then on to the page asked for.
'use strict';

const form = document.getElementById('login');
const error = document.getElementById('error');

function next() {
  const asked = new URLSearchParams(location.search).get('next') || '/engineer';
  // Only a path of this site: never an open redirect to another one.
  return /^\/(?![/\\])/.test(asked) ? asked : '/engineer';
}

// Until this script runs, the form posts nowhere useful (never a GET: the password would land
// in the address); from here on it logs in.
form.dataset.ready = 'yes';
form.addEventListener('submit', async (event) => {
  event.preventDefault();
  error.hidden = true;
  try {
    const res = await fetch('/api/v1/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ name: form.name.value, password: form.password.value }),
    });
    if (res.ok) { location.assign(next()); return; }
    const body = await res.json().catch(() => ({}));
    error.textContent = typeof body.detail === 'string' ? body.detail : `login failed (${res.status})`;
  } catch (e) {
    error.textContent = 'the server cannot be reached';
  }
  error.hidden = false;
});
