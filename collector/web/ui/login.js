// Carries the page the login interrupted, and says when the last attempt failed.
const search = new URLSearchParams(location.search);
document.getElementById('next').value = search.get('next') || '/';
if (search.get('failed')) document.getElementById('failed').hidden = false;
