// Jobs get the user's environment, not the launcher's (issue 11, point 7).
import t from 'tap'
import { jobEnv } from '../../nodes/env.js'

t.test('under npm start, npm\'s variables and PATH entries are left out', async (t) => {
  const env = jobEnv({
    HOME: '/home/me',
    PATH: '/src/herds/node_modules/.bin:/src/node_modules/.bin:/node_modules/.bin:/usr/lib/node_modules/npm/node_modules/@npmcli/run-script/lib/node-gyp-bin:/home/me/bin:/usr/bin',
    npm_lifecycle_event: 'start',
    npm_config_cache: '/home/me/.npm',
    INIT_CWD: '/src/herds',
    NODE: '/usr/bin/node',
    HERDS_TOKEN: 'herds_secret',
    LANG: 'C.UTF-8',
  })
  t.same(env, { HOME: '/home/me', PATH: '/home/me/bin:/usr/bin', LANG: 'C.UTF-8' })
})

t.test('started otherwise, the environment is kept but for the token', async (t) => {
  t.same(jobEnv({ PATH: '/opt/proj/node_modules/.bin:/usr/bin', NODE: 'x', HERDS_TOKEN: 's' }), { PATH: '/opt/proj/node_modules/.bin:/usr/bin', NODE: 'x' })
})
