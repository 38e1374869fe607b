/**
 * A structural check of an OpenAPI 3.1 document (no validator package is installed): the fields 3.1 requires,
 * path keys, operations, unique operationIds, declared path parameters, responses, every $ref resolving inside
 * the document, and schema `type` values that JSON Schema knows. Returns the problems found ([] when none).
 */
const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'array', 'object', 'null']);
const PARAM_IN = new Set(['query', 'header', 'path', 'cookie']);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function resolve(doc: Obj, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let at: unknown = doc;
  for (const part of ref.slice(2).split('/')) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObj(at) || !(key in at)) return undefined;
    at = at[key];
  }
  return at;
}

export function checkOpenApi31(doc: Obj): string[] {
  const problems: string[] = [];
  if (typeof doc['openapi'] !== 'string' || !/^3\.1\.\d+$/.test(doc['openapi']))
    problems.push('openapi must be 3.1.x');
  const info = doc['info'];
  if (!isObj(info) || typeof info['title'] !== 'string' || typeof info['version'] !== 'string')
    problems.push('info.title and info.version are required');
  const paths = doc['paths'];
  if (!isObj(paths)) return [...problems, 'paths must be an object'];
  const ids = new Map<string, string>();
  for (const [path, item] of Object.entries(paths)) {
    if (!path.startsWith('/')) problems.push(`path ${path} must start with /`);
    if (!isObj(item)) {
      problems.push(`path ${path} is not an object`);
      continue;
    }
    const templated = [...path.replace(/#.*$/, '').matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    for (const [verb, op] of Object.entries(item)) {
      const where = `${verb.toUpperCase()} ${path}`;
      if (!METHODS.has(verb)) {
        problems.push(`${where}: not an HTTP method`);
        continue;
      }
      if (!isObj(op)) {
        problems.push(`${where}: not an object`);
        continue;
      }
      const id = op['operationId'];
      if (typeof id === 'string') {
        if (ids.has(id)) problems.push(`${where}: operationId ${id} repeats ${ids.get(id)}`);
        ids.set(id, where);
      }
      const responses = op['responses'];
      if (!isObj(responses) || Object.keys(responses).length === 0) problems.push(`${where}: no responses`);
      else
        for (const [status, r] of Object.entries(responses)) {
          if (!/^([1-5][0-9X]{2}|default)$/.test(status)) problems.push(`${where}: response key ${status}`);
          if (!isObj(r) || typeof r['description'] !== 'string')
            problems.push(`${where} ${status}: a response needs a description`);
        }
      const params = Array.isArray(op['parameters']) ? (op['parameters'] as unknown[]) : [];
      const seen = new Set<string>();
      for (const p of params) {
        if (!isObj(p) || typeof p['name'] !== 'string' || !PARAM_IN.has(p['in'] as string)) {
          problems.push(`${where}: a parameter needs name and in`);
          continue;
        }
        const key = `${p['in'] as string}:${p['name']}`;
        if (seen.has(key)) problems.push(`${where}: parameter ${key} twice`);
        seen.add(key);
        if (p['in'] === 'path' && p['required'] !== true)
          problems.push(`${where}: path parameter ${p['name']} must be required`);
        if (!('schema' in p) && !('content' in p))
          problems.push(`${where}: parameter ${p['name']} needs a schema`);
      }
      for (const name of templated)
        if (!seen.has(`path:${name}`)) problems.push(`${where}: path parameter {${name}} is not declared`);
      for (const key of seen)
        if (key.startsWith('path:') && !templated.includes(key.slice(5)))
          problems.push(`${where}: ${key} is not in the path`);
      const body = op['requestBody'];
      if (body !== undefined && (!isObj(body) || !isObj(body['content'])))
        problems.push(`${where}: requestBody needs content`);
    }
  }
  // Every $ref resolves; every schema type is a JSON Schema type.
  const walk = (v: unknown, at: string): void => {
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${at}/${i}`));
    if (!isObj(v)) return;
    if (typeof v['$ref'] === 'string' && resolve(doc, v['$ref']) === undefined)
      problems.push(`${at}: $ref ${v['$ref']} does not resolve`);
    const t = v['type'];
    if ((typeof t === 'string' || Array.isArray(t)) && !/\/(properties|examples)$/.test(at)) {
      for (const x of [t].flat())
        if (typeof x !== 'string' || (!TYPES.has(x) && !at.includes('securitySchemes')))
          problems.push(`${at}: type ${String(x)} is not a JSON Schema type`);
    }
    for (const [k, x] of Object.entries(v)) walk(x, `${at}/${k}`);
  };
  walk(doc, '#');
  return problems;
}
