import { ORDER_TYPES } from '../../domain/trade.js';
import {
  ENVELOPE_PARAMS,
  GATEWAY_CONTRACT,
  ORDER_NO_PATTERN,
  type AnswerField,
  type BizField,
  type MethodContract,
} from '../gateway/contract.js';
import { ADMIN_ERROR_SCHEMA, ADMIN_SCHEMAS, type AdminSchema, type JsonSchema } from '../admin/schemas.js';
import { GATEWAY_CODES, gatewaySubCodes } from './codes.js';

/**
 * The OpenAPI 3.1 document of hospay's gateway (and, on an instance that serves the admin doors, the admin API),
 * generated from the schemas the code validates with: the gateway's contract (gateway/contract.ts, read by
 * BizReader) and ADMIN_SCHEMAS (admin/schemas.ts, attached to every admin route). It holds no secret: no key,
 * no token, no configuration value other than the public base URL.
 */
export interface OpenApiOptions {
  publicBaseUrl: string;
  /** Include the admin API (only on an instance that serves the admin doors). */
  admin: boolean;
  version?: string;
}

/** The gateway methods are one URL (POST /gateway); each gets its own path key, told apart by a fragment. */
export function gatewayPathOf(method: string): string {
  return `/gateway#${method}`;
}

/** An admin route path as OpenAPI writes it: /admin/apps/:id → /admin/apps/{id}. */
export function openApiPath(fastifyPath: string): string {
  return fastifyPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

const AMOUNT_PATTERN = '^(0|[1-9][0-9]{0,7})(\\.[0-9]{1,2})?$';

function bizFieldSchema(name: string, f: BizField): JsonSchema {
  const description = [
    `${f.zh} / ${f.en}`,
    f.requiredWhen ? `必填条件 required: ${f.requiredWhen.zh} / ${f.requiredWhen.en}` : '',
    f.extension ? 'hospay 扩展字段 / hospay extension' : '',
  ]
    .filter(Boolean)
    .join('. ');
  const base: JsonSchema = { description };
  if (f.example !== undefined) base['examples'] = [f.example];
  if (f.extension) base['x-hospay-extension'] = true;
  switch (f.kind) {
    case 'text':
      return {
        ...base,
        type: 'string',
        maxLength: f.max,
        ...(f.pattern ? { pattern: f.pattern.re.source } : {}),
        ...(f.enum ? { enum: [...f.enum] } : {}),
      };
    case 'orderNo':
      return { ...base, type: 'string', minLength: 1, maxLength: f.max, pattern: ORDER_NO_PATTERN.re.source };
    case 'amount':
    case 'amountOrZero':
      return {
        ...base,
        description: `${description}. 元，最多两位小数（JSON 数字或字符串） / yuan, at most 2 decimals (JSON number or string)${
          f.kind === 'amount' ? ', > 0' : ', ≥ 0'
        }`,
        type: ['number', 'string'],
        pattern: AMOUNT_PATTERN,
        maxLength: f.max,
      };
    case 'url':
      return { ...base, type: 'string', format: 'uri', maxLength: f.max, pattern: '^https?://' };
    case 'json':
      return {
        ...base,
        description: `${description}. 对象或其 JSON 文本，最多 ${f.max} 字符 / an object or its JSON text, at most ${f.max} characters`,
        type: ['object', 'array', 'string'],
      };
    case 'orderType':
      return {
        ...base,
        type: 'string',
        maxLength: f.max,
        enum: [...ORDER_TYPES, ...ORDER_TYPES.map((_, i) => String(i + 1))],
        description: `${description} (${name}: any letter case)`,
      };
  }
}

function bizSchema(m: MethodContract): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const [name, f] of Object.entries(m.fields)) properties[name] = bizFieldSchema(name, f);
  return {
    type: 'object',
    properties,
    required: Object.entries(m.fields)
      .filter(([, f]) => f.required)
      .map(([n]) => n),
    description:
      'Fields a method does not know are ignored. null and "" count as absent; strings are trimmed.',
  };
}

function answerFieldSchema(a: AnswerField): JsonSchema {
  const description = `${a.zh} / ${a.en}`;
  if (a.type === 'amount')
    return {
      type: 'number',
      description: `${description}. JSON 数字，恰好两位小数 / a JSON number with exactly 2 decimals`,
    };
  if (a.type === 'json-text') return { type: 'string', contentMediaType: 'application/json', description };
  return { type: 'string', description, ...(a.enum ? { enum: [...a.enum] } : {}) };
}

function answerBizSchema(m: MethodContract): JsonSchema {
  const properties: Record<string, JsonSchema> = {
    sub_code: { type: 'string', description: '"" on success; see x-hospay-sub-codes' },
    sub_msg: { type: 'string', description: '"" on success; else 中文 / English' },
  };
  for (const [name, a] of Object.entries(m.answer)) properties[name] = answerFieldSchema(a);
  return {
    type: 'object',
    properties,
    required: ['sub_code', 'sub_msg'],
    description:
      'On success (code 10000) every non-optional result field is present. A refusal has sub_code and sub_msg, and ' +
      'some refusals carry result fields too (the paid trade of TRADE_HAS_SUCCESS, retry_flag of lc.trade.cancel).',
  };
}

function gatewayOperation(method: string, m: MethodContract): JsonSchema {
  const envelopeProps: Record<string, JsonSchema> = {};
  for (const [name, p] of Object.entries(ENVELOPE_PARAMS)) {
    envelopeProps[name] = {
      type: 'string',
      minLength: 1,
      description: `${p.zh} / ${p.en}`,
      examples: [name === 'method' ? method : p.example],
      ...(p.pattern ? { pattern: p.pattern } : {}),
    };
  }
  envelopeProps['method'] = { ...envelopeProps['method'], const: method };
  envelopeProps['biz_content'] = {
    ...envelopeProps['biz_content'],
    contentMediaType: 'application/json',
    contentSchema: { $ref: `#/components/schemas/${bizName(method)}` },
  };
  const answerCodes = new Set(m.codes);
  const codes = gatewaySubCodes().filter(
    (c) => c.stage === 'request' || c.stage === 'field' || answerCodes.has(c.sub_code),
  );
  return {
    operationId: method.replace(/\.([a-z0-9])/g, (_, c: string) => c.toUpperCase()),
    tags: ['gateway'],
    summary: `${method} — ${m.zh}`,
    description:
      `${m.en}. The request is a signed form (docs/signing.md); the method is the form parameter \`method\`, ` +
      `and the path's fragment only tells the methods apart here: send every method to POST /gateway. ` +
      `Guide: ${m.doc}. Business and system sub_codes: ${m.codes.join(', ')}.`,
    externalDocs: { description: 'docs/gateway.md', url: m.doc },
    requestBody: {
      required: true,
      content: {
        'application/x-www-form-urlencoded': {
          schema: {
            type: 'object',
            properties: envelopeProps,
            required: Object.keys(ENVELOPE_PARAMS),
            description:
              'UTF-8, at most 64 KB, each parameter once. Other parameters (charset, format, version) are accepted when signed.',
          },
        },
      },
    },
    responses: {
      '200': {
        description:
          'Always HTTP 200. Signed with the platform key once the request signature verified (sign_type, sign); ' +
          'unsigned (no sign_type, no sign) when refused before. See x-hospay-sub-codes for every sub_code.',
        content: {
          'application/json': {
            schema: {
              allOf: [
                { $ref: '#/components/schemas/GatewayAnswer' },
                {
                  type: 'object',
                  properties: {
                    method: { type: 'string', enum: [method, ''] },
                    biz_content: { $ref: `#/components/schemas/${answerName(method)}` },
                  },
                },
              ],
            },
          },
        },
      },
    },
    'x-hospay-sub-codes': codes.map((c) => ({ sub_code: c.sub_code, code: c.code, zh: c.zh, en: c.en })),
  };
}

const pascal = (method: string) =>
  method
    .split('.')
    .map((p) => (p[0] ?? '').toUpperCase() + p.slice(1))
    .join('');
const bizName = (method: string) => `${pascal(method)}Biz`;
const answerName = (method: string) => `${pascal(method)}Answer`;

/** Annotations Fastify keeps in a route schema that are not JSON Schema. */
function routeOperation(key: string, s: AdminSchema): JsonSchema {
  const [verb] = key.split(' ');
  const parameters: JsonSchema[] = [];
  const addParams = (where: 'path' | 'query', schema: unknown) => {
    const o = schema as JsonSchema | undefined;
    const props = (o?.['properties'] ?? {}) as Record<string, JsonSchema>;
    const required = new Set((o?.['required'] ?? []) as string[]);
    for (const [name, p] of Object.entries(props))
      parameters.push({
        name,
        in: where,
        required: where === 'path' || required.has(name),
        schema: p,
        ...(typeof p['description'] === 'string' ? { description: p['description'] } : {}),
      });
  };
  addParams('path', s.params);
  addParams('query', s.querystring);
  const responses: Record<string, JsonSchema> = {};
  for (const [status, schema] of Object.entries((s.response ?? {}) as Record<string, JsonSchema>)) {
    const type = typeof schema['x-content-type'] === 'string' ? schema['x-content-type'] : 'application/json';
    responses[status] = { description: 'success', content: { [type]: { schema } } };
  }
  responses['400'] = {
    description: 'INVALID_FIELD.<field> (or INVALID_BODY…): the request is refused, nothing changed',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/AdminError' } } },
  };
  responses['401'] = {
    description: 'ADMIN_AUTH: no or a wrong token',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/AdminError' } } },
  };
  responses['403'] = {
    description: 'ADMIN_FORBIDDEN: the token’s role may not do this',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/AdminError' } } },
  };
  responses['404'] = {
    description: 'APP_NOT_FOUND, OPERATOR_NOT_FOUND, … (also another hospital’s record for a scoped token)',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/AdminError' } } },
  };
  responses['429'] = {
    description: 'ADMIN_THROTTLED: too many wrong tokens from this address (Retry-After)',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/AdminError' } } },
  };
  return {
    operationId: `admin_${verb!.toLowerCase()}_${key
      .slice(verb!.length + 1)
      .replace(/^\/admin\//, '')
      .replace(/[^A-Za-z0-9]+/g, '_')
      .replace(/_+$/, '')}`,
    tags: s.tags ?? ['admin'],
    ...(s.summary ? { summary: s.summary } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(s.body
      ? { requestBody: { required: true, content: { 'application/json': { schema: s.body } } } }
      : {}),
    responses,
    security: [{ adminToken: [] }],
  };
}

export function buildOpenApiDocument(opts: OpenApiOptions): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  const schemas: Record<string, JsonSchema> = {
    GatewayAnswer: {
      type: 'object',
      description:
        'The answer envelope: one line of JSON. Verify `sign` over the other top-level fields with the platform ' +
        'public key, biz_content as its exact text (docs/signing.md §4.1).',
      properties: {
        app_id: { type: 'string' },
        method: { type: 'string' },
        timestamp: { type: 'string', description: 'yyyy-MM-dd HH:mm:ss, Asia/Shanghai' },
        nonce_str: { type: 'string', description: 'as sent when well-formed, else ""' },
        code: { type: 'string', enum: GATEWAY_CODES.map((c) => c.code) },
        msg: { type: 'string', enum: GATEWAY_CODES.map((c) => c.msg) },
        biz_content: { type: 'object', required: ['sub_code', 'sub_msg'] },
        sign_type: { type: 'string', enum: ['RSA2', 'RSA'], description: 'absent in an unsigned refusal' },
        sign: { type: 'string', description: 'absent in an unsigned refusal' },
      },
      required: ['app_id', 'method', 'timestamp', 'nonce_str', 'code', 'msg', 'biz_content'],
    },
  };
  for (const [method, m] of Object.entries(GATEWAY_CONTRACT)) {
    paths[gatewayPathOf(method)] = { post: gatewayOperation(method, m) };
    schemas[bizName(method)] = bizSchema(m);
    schemas[answerName(method)] = answerBizSchema(m);
  }
  const tags: JsonSchema[] = [
    { name: 'gateway', description: '线上接口（签名表单） / the signed online gateway, POST /gateway' },
  ];
  const components: JsonSchema = { schemas };
  if (opts.admin) {
    schemas['AdminError'] = ADMIN_ERROR_SCHEMA;
    for (const [key, s] of Object.entries(ADMIN_SCHEMAS)) {
      const [verb, path] = key.split(' ') as [string, string];
      const p = (paths[openApiPath(path)] ??= {});
      p[verb.toLowerCase()] = routeOperation(key, s);
    }
    const adminTags = [...new Set(Object.values(ADMIN_SCHEMAS).flatMap((s) => s.tags ?? []))];
    tags.push(...adminTags.map((name) => ({ name, description: `admin API: ${name}` })));
    components['securitySchemes'] = {
      adminToken: {
        type: 'http',
        scheme: 'bearer',
        description:
          'Authorization: Bearer <token>: the admin token (HOSPAY_ADMIN_TOKEN, every permission) or an operator ' +
          'API token (hpo_…, POST /admin/operators/{username}/tokens), which acts with its operator’s role and ' +
          'hospitals.',
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: opts.admin ? 'hospay gateway and admin API' : 'hospay gateway',
      version: opts.version ?? '1',
      summary: '医院支付平台接口 / hospital payment platform API',
      description:
        'Generated from the schemas the code validates with (src/http/gateway/contract.ts, ' +
        'src/http/admin/schemas.ts). Gateway requests are signed (docs/signing.md); the methods are told apart ' +
        'by the form parameter `method`, all sent to POST /gateway (the path fragment #<method> only names the ' +
        'method here; clients drop it). Every sub_code with its gateway code and message: x-hospay-sub-codes. ' +
        'Amounts are yuan with at most two decimals, read and answered without floating point.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [
      { url: opts.publicBaseUrl, description: 'PUBLIC_BASE_URL: the gateway' },
      ...(opts.admin
        ? [{ url: '/', description: 'this address (with HOSPAY_ADMIN_LISTEN, the admin API is only here)' }]
        : []),
    ],
    tags,
    paths,
    components,
    'x-hospay-gateway-codes': GATEWAY_CODES,
    'x-hospay-sub-codes': gatewaySubCodes(),
  };
}
