// Signs requests with the npm `aws4` package (an implementation independent
// of the gateway's). stdin: a list of jobs {method, url, headers, body, key,
// secret, token, region, service, presign, expires, age_seconds}; stdout: for
// each job the {url, headers} to send.
const aws4 = require('aws4');

let input = '';
process.stdin.on('data', (c) => (input += c));
process.stdin.on('end', () => {
  const out = JSON.parse(input).map((job) => {
    const u = new URL(job.url);
    const headers = Object.assign({}, job.headers || {});
    let path = u.pathname + u.search;
    const when = new Date(Date.now() - (job.age_seconds || 0) * 1000);
    const amzDate = when.toISOString().replace(/[:\-]|\.\d{3}/g, '');
    if (job.presign) {
      path += (u.search ? '&' : '?') + 'X-Amz-Expires=' + (job.expires || 60) + '&X-Amz-Date=' + amzDate;
    } else {
      headers['X-Amz-Date'] = amzDate;
    }
    const opts = {
      host: u.host,
      path,
      method: job.method,
      headers,
      service: job.service,
      region: job.region,
      signQuery: !!job.presign,
    };
    if (job.body) opts.body = job.body;
    aws4.sign(opts, {
      accessKeyId: job.key,
      secretAccessKey: job.secret,
      sessionToken: job.token || undefined,
    });
    return { url: u.protocol + '//' + u.host + opts.path, headers: opts.headers };
  });
  process.stdout.write(JSON.stringify(out));
});
