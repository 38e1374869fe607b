/**
 * Finance operators (the people who log in to /finance), for the doors: the repository is deps.operators
 * (store/operators.ts); its refusals and the username rule are these (its records: services/records.ts).
 */
export { OperatorExistsError, OperatorInputError, USERNAME_PATTERN } from '../store/operators.js';
