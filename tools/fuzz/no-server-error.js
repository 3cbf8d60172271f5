// Every request of the fuzz pass: the server never answers 5xx to what a client sent.
pm.test("[fuzz] no server error (5xx)", function () {
    pm.expect(pm.response.code, pm.request.method + " " + pm.request.url.getPath()).to.be.below(500);
});
