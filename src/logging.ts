import pino, { type Logger } from 'pino';

/**
 * Paths never written to logs. Bodies are not logged at all; these catch anything that slips into a log call.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  '*.AccessToken',
  '*.accessToken',
  '*.access_token',
  '*.AuthCode',
  '*.authCode',
  '*.auth_code',
  '*.token',
  '*.privateKey',
  '*.private_key',
  '*.Tel',
  '*.tel',
  '*.PatientName',
  '*.patient_name',
  '*.patient_card_no',
  '*.BuyerLogonId',
  '*.buyer_logon_id',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '***' }, base: { svc: 'hospay' } }, destination);
}
