/**
 * The HospitalWS contract as deployed (issue 18): the names HIS stubs generated once (Apache Axis 1.4 WSDL2Java,
 * .NET "Add Service Reference" / wsdl.exe) compile in. Target namespace http://tempuri.org/, service HospitalWS,
 * ports HospitalWSSoap (SOAP 1.1) and HospitalWSSoap12 (SOAP 1.2), ASP.NET-style document/literal wrapped:
 * `<Op xmlns="http://tempuri.org/"><xml>document</xml></Op>` in, `<OpResponse><OpResult>answer</OpResult>
 * </OpResponse>` out, SOAPAction "http://tempuri.org/Op".
 */

export const TEMPURI = 'http://tempuri.org/';
export const SOAP11_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';
export const SOAP12_ENV = 'http://www.w3.org/2003/05/soap-envelope';

/**
 * The operations, each with the offline interface that answers it (src/http/offline/routes.ts,
 * OFFLINE_INTERFACES): every offline interface by its spec name, and the aliases deployed stubs use.
 */
export const SOAP_OPERATIONS: Readonly<Record<string, string>> = {
  FWC_IF_Barcode_Pay: 'FWC_IF_Barcode_Pay',
  FWC_IF_Barcode_Pay_Query: 'FWC_IF_Barcode_Pay_Query',
  FWC_IF_Barcode_Pay_Cancel: 'FWC_IF_Barcode_Pay_Cancel',
  FWC_IF_Barcode_Pay_Refund: 'FWC_IF_Barcode_Pay_Refund',
  FWC_IF_Qrcode_Pay: 'FWC_IF_Qrcode_Pay',
  // Aliases: a QR trade is queried, cancelled and refunded by the barcode interfaces (spec 2.2, 2.3).
  FWC_IF_Qrcode_Pay_Query: 'FWC_IF_Barcode_Pay_Query',
  FWC_IF_Qrcode_Pay_Cancel: 'FWC_IF_Barcode_Pay_Cancel',
  FWC_IF_Qrcode_Pay_Refund: 'FWC_IF_Barcode_Pay_Refund',
};

export const operationNames = (): string[] => Object.keys(SOAP_OPERATIONS);

/** The offline interface behind an operation, or undefined for a name the service does not have. */
export function interfaceOf(operation: string): string | undefined {
  return Object.hasOwn(SOAP_OPERATIONS, operation) ? SOAP_OPERATIONS[operation] : undefined;
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function element(name: string, child: string): string {
  return `      <s:element name="${name}">
        <s:complexType>
          <s:sequence>
            <s:element minOccurs="0" maxOccurs="1" name="${child}" type="s:string" />
          </s:sequence>
        </s:complexType>
      </s:element>`;
}

function bindingOperations(soap: 'soap' | 'soap12'): string {
  return operationNames()
    .map(
      (op) => `    <wsdl:operation name="${op}">
      <${soap}:operation soapAction="${TEMPURI}${op}" style="document" />
      <wsdl:input>
        <${soap}:body use="literal" />
      </wsdl:input>
      <wsdl:output>
        <${soap}:body use="literal" />
      </wsdl:output>
    </wsdl:operation>`,
    )
    .join('\n');
}

/**
 * The WSDL, in the form an ASP.NET .asmx service publishes it. `address` is the endpoint (PUBLIC_BASE_URL and
 * the path asked for), never taken from the request's Host header.
 */
export function buildWsdl(address: string): string {
  const ops = operationNames();
  const loc = escapeXml(address);
  return `<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:tm="http://microsoft.com/wsdl/mime/textMatching/" xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:mime="http://schemas.xmlsoap.org/wsdl/mime/" xmlns:tns="${TEMPURI}" xmlns:s="http://www.w3.org/2001/XMLSchema" xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" xmlns:http="http://schemas.xmlsoap.org/wsdl/http/" targetNamespace="${TEMPURI}" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/">
  <wsdl:types>
    <s:schema elementFormDefault="qualified" targetNamespace="${TEMPURI}">
${ops.map((op) => `${element(op, 'xml')}\n${element(`${op}Response`, `${op}Result`)}`).join('\n')}
    </s:schema>
  </wsdl:types>
${ops
  .map(
    (op) => `  <wsdl:message name="${op}SoapIn">
    <wsdl:part name="parameters" element="tns:${op}" />
  </wsdl:message>
  <wsdl:message name="${op}SoapOut">
    <wsdl:part name="parameters" element="tns:${op}Response" />
  </wsdl:message>`,
  )
  .join('\n')}
  <wsdl:portType name="HospitalWSSoap">
${ops
  .map(
    (op) => `    <wsdl:operation name="${op}">
      <wsdl:input message="tns:${op}SoapIn" />
      <wsdl:output message="tns:${op}SoapOut" />
    </wsdl:operation>`,
  )
  .join('\n')}
  </wsdl:portType>
  <wsdl:binding name="HospitalWSSoap" type="tns:HospitalWSSoap">
    <soap:binding transport="http://schemas.xmlsoap.org/soap/http" />
${bindingOperations('soap')}
  </wsdl:binding>
  <wsdl:binding name="HospitalWSSoap12" type="tns:HospitalWSSoap">
    <soap12:binding transport="http://schemas.xmlsoap.org/soap/http" />
${bindingOperations('soap12')}
  </wsdl:binding>
  <wsdl:service name="HospitalWS">
    <wsdl:port name="HospitalWSSoap" binding="tns:HospitalWSSoap">
      <soap:address location="${loc}" />
    </wsdl:port>
    <wsdl:port name="HospitalWSSoap12" binding="tns:HospitalWSSoap12">
      <soap12:address location="${loc}" />
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
`;
}
